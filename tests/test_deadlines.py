"""The per-request time limit (gateway.http.limits over data.deadlines): one timer for
every request in flight still stops exactly the slow ones, spares streams that started,
and never touches a request that already finished."""

from __future__ import annotations

import asyncio
import time

from starlette.types import Message, Receive, Scope, Send

from gateway.http.limits import RequestLimitsMiddleware


def _scope(path: str) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "query_string": b"",
        "state": {},
    }


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/slow`` sleeps past any limit; ``/stream`` starts at once and then trickles;
    anything else answers at once."""
    if scope["path"] == "/slow":
        await asyncio.sleep(30)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/stream":
        for _ in range(4):
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
    await send({"type": "http.response.body", "body": b"ok"})


async def _call(middleware: RequestLimitsMiddleware, path: str) -> tuple[int, bytes]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware(_scope(path), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_only_the_slow_requests_among_many_are_stopped() -> None:
    middleware = RequestLimitsMiddleware(
        _app, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=0.2
    )
    paths = ["/slow" if i % 3 == 0 else "/fast" for i in range(30)] + ["/stream"]
    began = time.monotonic()
    results = await asyncio.gather(*(_call(middleware, path) for path in paths))
    elapsed = time.monotonic() - began
    for path, (status, body) in zip(paths, results, strict=True):
        if path == "/slow":
            assert (status, b'"code":"TIMEOUT"' in body) == (504, True), (path, body)
        elif path == "/stream":
            assert (status, body) == (200, b"xxxxok")  # started in time: never cut
        else:
            assert (status, body) == (200, b"ok")
    assert 0.2 <= elapsed < 5, elapsed
    assert not middleware.deadlines
    assert not middleware.expired


async def test_a_finished_request_is_never_cancelled_later() -> None:
    middleware = RequestLimitsMiddleware(
        _app, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=0.05
    )
    assert await _call(middleware, "/fast") == (200, b"ok")
    await asyncio.sleep(0.2)  # past the deadline the request had: this task goes on
    status, _ = await _call(middleware, "/slow")  # and the next request has its own
    assert status == 504


async def test_a_cancellation_that_is_not_the_deadline_goes_through() -> None:
    middleware = RequestLimitsMiddleware(
        _app, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=30
    )
    task = asyncio.ensure_future(_call(middleware, "/slow"))
    await asyncio.sleep(0.05)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the server's cancellation was swallowed")
    assert not middleware.deadlines


async def test_a_body_without_framing_headers_is_still_counted_over_http_2() -> None:
    """HTTP/1 has no body without Content-Length or Transfer-Encoding; HTTP/2 does."""

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    middleware = RequestLimitsMiddleware(
        echo, max_body_bytes=10, max_query_string_bytes=10, timeout_seconds=5
    )
    chunks = [
        {"type": "http.request", "body": b"x" * 8, "more_body": True},
        {"type": "http.request", "body": b"x" * 8, "more_body": False},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return chunks.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await middleware({**_scope("/upload"), "method": "POST", "http_version": "2"}, receive, send)
    assert sent[0]["status"] == 413
