"""Hostile HTTP input: malformed GraphQL requests, oversized bodies and URLs, deep cursors,
time limits and clients that go away. Never a 500, never text/plain."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.types import Message, Receive, Scope, Send

from gateway.http.limits import RequestLimitsMiddleware
from gateway.observability.logging import configure_logging
from tests.conftest import Gateway, SeededDatabase, make_settings, running_gateway

JSON = {"content-type": "application/json"}
MALFORMED: dict[str, tuple[bytes, dict[str, str], int]] = {
    "null": (b"null", JSON, 400),
    "number": (b"123", JSON, 400),
    "string": (b'"{ __typename }"', JSON, 400),
    "empty_batch": (b"[]", JSON, 400),
    "batch_of_numbers": (b"[1, 2]", JSON, 400),
    "not_utf8": (b'{"query": "\xff\xfe"}', JSON, 400),
    "deeply_nested_arrays": (b"[" * 100_000 + b"]" * 100_000, JSON, 400),
    "invalid_json": (b'{"query": ', JSON, 400),
    "wrong_content_type": (b'{"query": "{ __typename }"}', {"content-type": "text/plain"}, 415),
    "no_content_type": (b'{"query": "{ __typename }"}', {}, 415),
    "form": (b"query=%7B__typename%7D", {"content-type": "application/x-www-form-urlencoded"}, 415),
    "missing_query": (b'{"variables": {}}', JSON, 400),
    "query_not_a_string": (b'{"query": 5}', JSON, 400),
    "variables_not_an_object": (b'{"query": "{ __typename }", "variables": [1]}', JSON, 400),
}


def assert_graphql_error(response: Any, status: int, code: str = "BAD_USER_INPUT") -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code, error
    return str(error["message"])


def assert_problem(response: Any, status: int, code: str = "BAD_USER_INPUT") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_graphql_requests_answer_json_errors(gateway: Gateway, case: str) -> None:
    body, headers, status = MALFORMED[case]
    response = await gateway.client.post("/graphql", content=body, headers=headers)
    assert_graphql_error(response, status)


async def test_mutation_over_get_is_405_with_a_code(gateway: Gateway) -> None:
    response = await gateway.client.get(
        "/graphql", params={"query": 'mutation { logout(input: {refreshToken: "x"}) }'}
    )
    assert "POST" in assert_graphql_error(response, 405)
    assert response.headers["allow"] == "POST"
    ok = await gateway.client.get("/graphql", params={"query": "{ categories { totalCount } }"})
    assert ok.status_code == 200
    assert "errors" not in ok.json()
    bad_variables = await gateway.client.get(
        "/graphql", params={"query": "{ __typename }", "variables": "{"}
    )
    assert_graphql_error(bad_variables, 400)


async def test_graphiql_off_is_a_json_404(seeded: SeededDatabase, tmp_path: Path) -> None:
    settings = make_settings(seeded.url, tmp_path, enable_graphiql=False)
    async with running_gateway(settings, seeded.backend) as gateway:
        response = await gateway.client.get("/graphql", headers={"accept": "text/html"})
        assert_graphql_error(response, 404, "NOT_FOUND")


async def test_body_over_the_limit_is_413_by_its_length(gateway: Gateway) -> None:
    big = b'{"query": "' + b" " * 1_100_000 + b'{ __typename }"}'
    response = await gateway.client.post("/graphql", content=big, headers=JSON)
    assert "limit" in assert_graphql_error(response, 413)
    response = await gateway.client.post("/api/v1/auth/register", content=big, headers=JSON)
    assert_problem(response, 413)


async def test_chunked_body_is_cut_off_once_over_the_limit(gateway: Gateway) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'{"query": "'
        for _ in range(100):  # 100 x 64 kB: 6.4 MB if read in full
            pulled += 1
            yield b" " * 65_536
        yield b'{ __typename }"}'

    for path, problem in (("/graphql", False), ("/api/v1/auth/register", True)):
        pulled = 0
        response = await gateway.client.post(path, content=chunks(), headers=JSON)
        if problem:
            assert_problem(response, 413)
        else:
            assert_graphql_error(response, 413)
        assert pulled < 30, pulled  # refused at about 1 MB, not after reading 6.4 MB


def http_scope(
    method: str, path: str, query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "headers": [(b"host", b"testserver"), *(headers or [])],
    }


async def call(app: Any, scope: dict[str, Any], messages: list[Message]) -> list[Message]:
    """The app called as a server would (httpx refuses URLs over 64 kB)."""
    pending = iter(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return next(pending, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_query_string_over_100_kb_is_414(gateway: Gateway) -> None:
    empty = [{"type": "http.request", "body": b"", "more_body": False}]
    query = b"query=" + b"x" * 100_000
    sent = await call(gateway.app, http_scope("GET", "/graphql", query), empty)
    assert sent[0]["status"] == 414
    assert b'"code":"BAD_USER_INPUT"' in sent[1]["body"]
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    sent = await call(gateway.app, http_scope("GET", "/api/v1/products", b"q=" + query), empty)
    assert sent[0]["status"] == 414
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    # Just under the limit reaches the handler (which finds the name search too long).
    sent = await call(
        gateway.app, http_scope("GET", "/api/v1/products", b"q=" + b"x" * 99_000), empty
    )
    assert sent[0]["status"] == 422


async def test_deeply_nested_cursor_is_400_in_both_interfaces(gateway: Gateway) -> None:
    cursor = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    response = await gateway.client.get("/api/v1/products", params={"cursor": cursor})
    assert_problem(response, 400)
    response = await gateway.client.get("/api/v2/products", params={"cursor": cursor})
    assert_problem(response, 400)
    body = await gateway.graphql(
        "query($c: String) { products(after: $c) { totalCount } }", {"c": cursor}
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_slow_rest_request_is_a_504_problem(seeded: SeededDatabase, tmp_path: Path) -> None:
    settings = make_settings(seeded.url, tmp_path, request_timeout_seconds=0.2)
    async with running_gateway(settings, seeded.backend) as gateway:

        async def slow() -> dict[str, str]:
            await asyncio.sleep(30)
            return {}

        gateway.app.add_api_route("/api/v1/test-slow", slow)
        response = await gateway.client.get("/api/v1/test-slow")
        assert_problem(response, 504, "TIMEOUT")
        assert (await gateway.client.get("/api/v1/categories")).status_code == 200


async def test_slow_graphql_request_is_a_json_504() -> None:
    async def slow_app(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(30)

    middleware = RequestLimitsMiddleware(
        slow_app, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=0.1
    )
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/graphql",
        "headers": [],
        "query_string": b"",
        "state": {},
    }
    await middleware(scope, receive, send)
    assert sent[0]["status"] == 504
    assert b'"code":"TIMEOUT"' in sent[1]["body"]


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


@pytest.mark.parametrize("path", ["/api/v1/auth/register", "/graphql"])
async def test_a_client_that_goes_away_is_logged_as_such(
    gateway: Gateway, log_stream: io.StringIO, path: str
) -> None:
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"query": ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    scope = http_scope("POST", path, headers=[(b"content-type", b"application/json")])
    await call(gateway.app, scope, messages)
    events = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    names = [event["event"] for event in events]
    assert "client_disconnected" in names
    assert "unhandled_exception" not in names
    [access] = [event for event in events if event["event"] == "request"]
    assert access["status"] == 499


async def test_a_disconnect_after_the_whole_answer_is_no_dropped_client(
    gateway: Gateway, log_stream: io.StringIO
) -> None:
    """Servers report a disconnect once the answer is complete; static files listen for
    it. The request was answered: 200 in the access line and metrics, not 499."""
    answered = asyncio.Event()
    requested = False
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await gateway.app(http_scope("GET", "/graphiql-assets/LICENSES.txt"), receive, send)
    assert sent[0]["status"] == 200
    events = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    assert "client_disconnected" not in [event["event"] for event in events]
    [access] = [event for event in events if event["event"] == "request"]
    assert access["status"] == 200
