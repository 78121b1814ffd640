"""The consoles and the browser clients of live events, in a real headless Chromium with
the network closed (``tests.browser_world``): any request beyond loopback, any console
error and any page error fails the test.

- GraphiQL (``/graphql``) loads the schema, runs a typed query, and runs a typed
  subscription over graphql-transport-ws that shows an order's change made through REST;
- the graphql-ws client library (npm ``graphql-ws``, ``tests/browser``) subscribes from a
  page of the gateway's origin and receives the event;
- a browser ``EventSource`` follows an order's server-sent events (``?access_token=``);
- Swagger UI (``/docs``) shows every operation of the OpenAPI document, and "Try it
  out" / "Execute" on ``GET /api/v1/products`` shows the catalog.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from resolvers.ids import to_global_id
from tests.browser_world import (
    TIMEOUT,
    graphql_ws_umd,
    login,
    offline_page,
    place_order,
    set_status,
    wait,
)
from tests.browser_world import chromium as chromium  # the fixtures
from tests.browser_world import live as live
from tests.serving import Served

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, WebSocketRoute

NO_SUCH_ORDER = to_global_id("Order", 2**31 - 1)
FOLLOW = "subscription Follow($id: ID!) { orderUpdated(id: $id) { databaseId status } }"
TEST_PAGES = "/__browser-test__/"


def expect(target: Any) -> Any:
    """Playwright's ``expect`` (imported here: without Playwright the fixtures fail or
    skip, instead of the module failing to import)."""
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT * 1000)
    return playwright_expect(target)


async def type_into(page: Page, editor: str, text: str) -> None:
    """Replaces a CodeMirror editor's text, as a paste does (no auto-closed brackets)."""
    await page.locator(f"{editor} .CodeMirror").click()
    await page.keyboard.press("Control+A")
    await page.keyboard.insert_text(text)


async def type_query(page: Page, text: str) -> None:
    await type_into(page, ".graphiql-query-editor", text)
    # GraphiQL parses the editor 100 ms after the last edit, then stores the text: run
    # before that and it would run the previous document.
    await page.wait_for_function("(q) => localStorage.getItem('graphiql:query') === q", arg=text)


def result_json(text: str) -> Any:
    """A result pane's JSON, as shown (CodeMirror indents with no-break spaces)."""
    return json.loads(text.replace("\xa0", " "))


# GraphiQL.


async def test_graphiql_loads_the_schema_and_runs_a_query(live: Served, chromium: Browser) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        fields = await client.post(
            "/graphql", json={"query": '{ __type(name: "Query") { fields { name } } }'}
        )
        query_fields = {f["name"] for f in fields.json()["data"]["__type"]["fields"]}
        product = (await client.get("/api/v1/products?limit=3")).json()["data"][2]
    assert {"products", "product", "categories", "viewer"} <= query_fields

    async with offline_page(chromium) as page:
        response = await page.goto(live.url + "/graphql")
        assert response is not None
        assert response.status == 200
        await page.get_by_role("button", name="Show Documentation Explorer").click()
        explorer = page.locator(".graphiql-doc-explorer")
        await expect(explorer.get_by_text("Root Types")).to_be_visible()
        await explorer.get_by_role("link", name="Query", exact=True).click()
        await expect(explorer.locator(".graphiql-doc-explorer-title")).to_have_text("Query")
        names = explorer.locator(".graphiql-doc-explorer-field-name")
        await expect(names).to_have_count(len(query_fields))
        assert set(await names.all_inner_texts()) == query_fields

        await type_query(page, f'{{ product(sku: "{product["sku"]}") {{ databaseId sku name }} }}')
        await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
        result = page.locator(".result-window")
        await expect(result).to_contain_text(product["name"])
        assert result_json(await result.inner_text()) == {
            "data": {
                "product": {
                    "databaseId": product["id"],
                    "sku": product["sku"],
                    "name": product["name"],
                }
            }
        }


async def test_graphiql_runs_a_subscription(live: Served, chromium: Browser) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        customer = await login(client, "customer@example.com")
        staff = await login(client, "staff@example.com")
        order_id = await place_order(client, customer)

        async with offline_page(chromium) as page:
            following = asyncio.get_running_loop().create_future()
            await page.route_web_socket("**/graphql", probe_after_subscribe(following))
            await page.goto(live.url + "/graphql")
            await page.locator('.graphiql-editor-tools button[data-name="headers"]').click()
            await type_into(
                page,
                ".graphiql-editor-tool .graphiql-editor:not(.hidden)",
                json.dumps({"Authorization": f"Bearer {customer}"}),
            )
            await type_query(
                page,
                "subscription { orderUpdated(id: "
                f'"{to_global_id("Order", order_id)}") '
                "{ databaseId status } }",
            )
            await page.get_by_role("button", name="Execute query (Ctrl-Enter)").click()
            await wait(following)  # the server follows the order: change it

            await set_status(client, staff, order_id, "paid")
            result = page.locator(".result-window")
            await expect(result).to_contain_text('"paid"')
            assert result_json(await result.inner_text()) == {
                "data": {"orderUpdated": {"databaseId": order_id, "status": "paid"}}
            }


def probe_after_subscribe(following: asyncio.Future[None]) -> Any:
    """Passes GraphiQL's WebSocket through unchanged, and after its ``subscribe`` sends a
    probe (a subscription to no order) on the same connection, whose answers GraphiQL
    never sees. The server handles a connection's messages in order, so once the probe
    is refused, GraphiQL's subscription holds its place on the event bus."""

    def handle(socket: WebSocketRoute) -> None:
        server = socket.connect_to_server()

        def from_page(message: str | bytes) -> None:
            server.send(message)
            if json.loads(message).get("type") == "subscribe":
                server.send(
                    json.dumps(
                        {
                            "id": "probe",
                            "type": "subscribe",
                            "payload": {"query": FOLLOW, "variables": {"id": NO_SUCH_ORDER}},
                        }
                    )
                )

        def from_server(message: str | bytes) -> None:
            assert isinstance(message, str), "a binary frame"
            answer = json.loads(message)
            if answer.get("id") != "probe":
                socket.send(message)
            elif answer["type"] == "complete" and not following.done():
                following.set_result(None)

        socket.on_message(from_page)
        server.on_message(from_server)

    return handle


# The graphql-ws library and EventSource, in a page of the gateway's origin.


async def client_page(page: Page, live: Served) -> None:
    """A page of the gateway (its GraphiQL page, under the gateway's page policy) with the
    graphql-ws library added from ``tests/browser``, as a same-origin script.

    The host page is the gateway's own, not one made up by the test: Chromium's Local
    Network Access checks refuse a connection to loopback from a page that did not come
    from a private address, as a page fulfilled by Playwright does not."""
    library = graphql_ws_umd().read_bytes()

    async def serve(route: Any) -> None:
        await route.fulfill(body=library, content_type="text/javascript")

    await page.route(f"{live.url}{TEST_PAGES}graphql-ws.js", serve)
    await page.goto(live.url + "/graphql")
    await page.add_script_tag(url=f"{TEST_PAGES}graphql-ws.js")
    assert await page.evaluate("typeof graphqlWs.createClient") == "function"


SUBSCRIBE = """async ({url, token, query, id, probe}) => {
  window.heard = [];
  const client = graphqlWs.createClient({
    url, connectionParams: {Authorization: `Bearer ${token}`}, lazy: true});
  client.subscribe({query, variables: {id}}, {
    next: (value) => window.heard.push(value),
    error: (error) => window.heard.push({error: String(error)}),
    complete: () => window.heard.push("complete"),
  });
  // The same connection, after it: once this is refused, the first one follows.
  return await new Promise((resolve) => {
    const refused = [];
    client.subscribe({query, variables: {id: probe}}, {
      next: (value) => refused.push(value),
      error: (error) => resolve({error: String(error)}),
      complete: () => resolve(refused),
    });
  });
}"""


async def test_the_graphql_ws_library_receives_an_order_event(
    live: Served, chromium: Browser
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        customer = await login(client, "customer@example.com")
        staff = await login(client, "staff@example.com")
        order_id = await place_order(client, customer)

        async with offline_page(chromium) as page:
            await client_page(page, live)
            frames: list[Any] = []
            page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
            refused = await page.evaluate(
                SUBSCRIBE,
                {
                    "url": live.url.replace("http://", "ws://") + "/graphql",
                    "token": customer,
                    "query": FOLLOW,
                    "id": to_global_id("Order", order_id),
                    "probe": NO_SUCH_ORDER,
                },
            )
            assert isinstance(refused, list), refused
            assert [r["errors"][0]["extensions"]["code"] for r in refused] == ["NOT_FOUND"]

            await set_status(client, staff, order_id, "paid")
            await page.wait_for_function("() => window.heard.length > 0")
            assert await page.evaluate("window.heard") == [
                {"data": {"orderUpdated": {"databaseId": order_id, "status": "paid"}}}
            ]
            assert frames
            assert all(isinstance(frame, str) for frame in frames)


EVENT_SOURCE = """(path) => new Promise((resolve, reject) => {
  window.heard = [];
  const source = new EventSource(path);
  source.addEventListener("order.updated", (event) => window.heard.push(
    {id: event.lastEventId, data: JSON.parse(event.data)}));
  // Open once the gateway has answered 200: it subscribes before it answers.
  source.onopen = () => resolve(source.readyState);
  source.onerror = () => reject(new Error(`EventSource failed, state ${source.readyState}`));
  window.source = source;
})"""


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_an_event_source_follows_an_order(
    live: Served, chromium: Browser, version: str
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        customer = await login(client, "customer@example.com")
        staff = await login(client, "staff@example.com")
        order_id = await place_order(client, customer)

        async with offline_page(chromium) as page:
            await client_page(page, live)
            path = f"/api/{version}/orders/{order_id}/events?access_token={customer}"
            assert await page.evaluate(EVENT_SOURCE, path) == 1  # OPEN

            await set_status(client, staff, order_id, "paid")
            await page.wait_for_function("() => window.heard.length > 0")
            heard = await page.evaluate("window.source.close(), window.heard")
            assert [
                (e["id"], e["data"]["order_id"], e["data"]["previous_status"], e["data"]["status"])
                for e in heard
            ] == [(f"{order_id}:paid", order_id, "pending", "paid")]


# Swagger UI.


async def test_swagger_ui_lists_every_operation_and_runs_one(
    live: Served, chromium: Browser
) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as client:
        document = (await client.get("/openapi.json")).json()
        first_page = (await client.get("/api/v1/products")).json()["data"]
    operations = {
        (method.upper(), path): len(operation.get("tags", [])) or 1
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert ("GET", "/api/v1/products") in operations

    async with offline_page(chromium) as page:
        response = await page.goto(live.url + "/docs")
        assert response is not None
        assert response.status == 200
        blocks = page.locator(".opblock")
        # Each operation once under each of its tags.
        await expect(blocks).to_have_count(sum(operations.values()))
        shown = await blocks.evaluate_all("""blocks => blocks.map(block => [
            block.querySelector('.opblock-summary-method').textContent,
            block.querySelector('.opblock-summary-path').dataset.path])""")
        assert {tuple(pair) for pair in shown} == set(operations)

        products = page.locator(
            ".opblock-get", has=page.locator('.opblock-summary-path[data-path="/api/v1/products"]')
        )
        await products.locator(".opblock-summary-control").click()
        await products.get_by_role("button", name="Try it out").click()
        await products.get_by_role("button", name="Execute").click()
        live_response = products.locator(".live-responses-table .response")
        await expect(live_response.locator(".response-col_status")).to_have_text("200")
        body = live_response.locator(".response-col_description pre").first
        await expect(body).to_contain_text(first_page[0]["name"])
        assert result_json(await body.inner_text())["data"] == first_page
