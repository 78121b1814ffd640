// Runs the GraphQL-over-HTTP audit suite (graphql-http's auditServer) against a URL and
// prints one JSON array: every audit's id, name and status, and for each that did not
// pass, why and what the server answered (status, content type, body).
// Usage: node graphql_http_audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphql_http_audit.mjs <graphql url>');
  process.exit(2);
}

async function answered(response) {
  if (!response) return null;
  let body = null;
  try {
    body = await response.clone().text();
  } catch {
    body = '(body already read)';
  }
  return {
    status: response.status,
    contentType: response.headers.get('content-type'),
    body: body === null ? null : body.slice(0, 2000),
  };
}

const results = await auditServer({ url });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.response = await answered(result.response);
  }
  report.push(entry);
}
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
