// Starts GraphiQL against the endpoint that served this page: queries and mutations over
// HTTP, subscriptions over a WebSocket to the same URL (graphql-transport-ws, with the
// graphql-ws client the GraphiQL bundle carries; the Headers pane's entries become the
// connection_init payload, so {"Authorization": "Bearer <token>"} works for both).
// A file, not an inline script, so the page's Content-Security-Policy can allow scripts
// from 'self' only.
(function () {
  var url = window.location.origin + window.location.pathname;
  var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({
    url: url,
    subscriptionUrl: scheme + "//" + window.location.host + window.location.pathname,
  });
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultEditorToolsVisibility: true,
      shouldPersistHeaders: false,
    })
  );
})();
