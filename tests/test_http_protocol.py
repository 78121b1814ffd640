"""The server's coalescing transport (gateway.http.protocol): the writes of one loop turn
leave in one write, in order; closing writes what is kept first, aborting drops it; the
gateway's response cycle writes what uvicorn's writes, byte for byte, and fails where it
fails; and the gateway's HTTP protocol answers a real client, keep-alive and all."""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.http.coalescing import CoalescingTransport
from gateway.http.protocol import GatewayCycle, GatewayHttpProtocol, HeadLimits


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_one_turns_writes_leave_together_in_order() -> None:
    fake = FakeTransport()
    transport = CoalescingTransport(fake)
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"")
    transport.writelines([b"hello", b" world"])
    assert fake.writes == []
    assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nhello world")
    await asyncio.sleep(0)
    assert fake.writes == [b"HTTP/1.1 200 OK\r\n\r\nhello world"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert fake.writes[-1] == b"next"


async def test_close_writes_what_is_kept_and_abort_drops_it() -> None:
    fake = FakeTransport()
    transport = CoalescingTransport(fake)
    transport.write(b"last words")
    transport.close()
    assert (fake.writes, fake.closed) == ([b"last words"], True)
    await asyncio.sleep(0)
    assert fake.writes == [b"last words"]  # not twice

    fake = FakeTransport()
    transport = CoalescingTransport(fake)
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert (fake.writes, fake.aborted) == ([], True)


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("tuned", [True, False], ids=["tuned", "stock"])
async def test_the_protocol_serves_keep_alive_requests_whole(tuned: bool) -> None:
    """Both ways (``HTTP_WRITES``): the gateway's cycle over a coalescing transport, or
    uvicorn's own cycle and transport; the head limits either way."""
    seen: list[tuple[type, type]] = []

    class Recording(GatewayHttpProtocol.with_limits(HeadLimits(), tuned=tuned)):  # type: ignore[misc]
        def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
            super()._start_asgi_task(cycle, app)
            seen.append((type(cycle), type(self.transport)))

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, http=Recording, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Two requests in one packet (pipelined), then a third on the same connection.
        writer.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.write(b"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # until the server closes
        writer.close()
        responses = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
        assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [b"/one", b"/two", b"/three"]
        cycle, transport = (GatewayCycle, CoalescingTransport) if tuned else (None, None)
        assert len(seen) == 3
        for cycle_class, transport_class in seen:
            if tuned:
                assert (cycle_class, transport_class) == (cycle, transport)
            else:
                assert cycle_class is RequestResponseCycle
                assert transport_class is not CoalescingTransport
    finally:
        server.should_exit = True
        await serving


class Flow:
    write_paused = False


def _cycle(
    cls: type[RequestResponseCycle],
    method: str,
    keep_alive: bool,
) -> tuple[RequestResponseCycle, FakeTransport, list[str]]:
    transport = FakeTransport()
    events: list[str] = []
    cycle = cls(
        scope={"method": method},
        transport=transport,
        flow=Flow(),  # type: ignore[arg-type]
        logger=None,
        access_logger=None,
        access_log=False,  # type: ignore[arg-type]
        default_headers=[(b"date", b"Sun, 29 Nov 2026 23:12:45 GMT")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: events.append("done"),
    )
    return cycle, transport, events


async def _run(
    cls: type[RequestResponseCycle], method: str, keep_alive: bool, messages: list[dict[str, Any]]
) -> tuple[Any, ...]:
    cycle, transport, events = _cycle(cls, method, keep_alive)
    failure = None
    for message in messages:
        try:
            await cycle.send(message)
        except RuntimeError as exc:
            failure = str(exc)
            break
    return (
        transport.writes,
        transport.closed,
        events,
        failure,
        cycle.keep_alive,
        cycle.response_started,
        cycle.response_complete,
        cycle.chunked_encoding,
        cycle.expected_content_length,
        cycle.message_event.is_set(),
    )


HEADS = {
    "length": [(b"content-length", b"5"), (b"content-type", b"text/plain")],
    "ours": [
        (b"etag", b'"abc"'),
        (b"content-length", b"5"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"default-src 'none'"),
        (b"x-request-id", b"r-1"),
    ],
    "no length": [(b"content-type", b"text/plain")],
    "chunked": [(b"transfer-encoding", b"Chunked")],
    "two lengths": [(b"content-length", b"5"), (b"content-length", b"9")],
    "close": [(b"content-length", b"5"), (b"connection", b"keep-alive, Close")],
    "upper case": [(b"Content-Length", b"5"), (b"X-Thing", b"Yes")],
    "bad name": [(b"content-length", b"5"), (b"bad name", b"x")],
    "bad value": [(b"content-length", b"5"), (b"x-thing", b"a\r\nb")],
    "tab in value": [(b"content-length", b"5"), (b"x-thing", b"a\tb")],
    "none": [],
}
BODIES = {
    "whole": [{"type": "http.response.body", "body": b"hello"}],
    "in parts": [
        {"type": "http.response.body", "body": b"he", "more_body": True},
        {"type": "http.response.body", "body": b"llo"},
    ],
    "short": [{"type": "http.response.body", "body": b"hell"}],
    "long": [{"type": "http.response.body", "body": b"hello!"}],
    "empty": [{"type": "http.response.body", "body": b""}],
    "none": [],
    "twice": [
        {"type": "http.response.body", "body": b"hello"},
        {"type": "http.response.body", "body": b"again"},
    ],
}


@pytest.mark.parametrize(
    ("head", "status", "method", "keep_alive"),
    list(itertools.product(HEADS, (200, 204, 304, 404), ("GET", "HEAD"), (True, False))),
)
async def test_the_gateways_cycle_writes_what_uvicorns_writes(
    head: str,
    status: int,
    method: str,
    keep_alive: bool,
) -> None:
    for body in BODIES:
        messages = [
            {"type": "http.response.start", "status": status, "headers": HEADS[head]},
            *BODIES[body],
        ]
        ours = await _run(GatewayCycle, method, keep_alive, messages)
        theirs = await _run(RequestResponseCycle, method, keep_alive, messages)
        # Each write the same bytes in order (the transport gathers a turn's into one).
        assert (b"".join(ours[0]), *ours[1:]) == (b"".join(theirs[0]), *theirs[1:]), body


async def test_the_gateways_cycle_refuses_a_body_before_its_head_as_uvicorn_does() -> None:
    body = [{"type": "http.response.body", "body": b"hello"}]
    ours = await _run(GatewayCycle, "GET", True, body)
    assert ours == await _run(RequestResponseCycle, "GET", True, body)
    assert ours[3] == "Expected ASGI message 'http.response.start', but got 'http.response.body'."


async def test_the_gateways_cycle_writes_nothing_once_the_client_is_gone() -> None:
    cycle, transport, events = _cycle(GatewayCycle, "GET", True)
    cycle.disconnected = True
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
    )
    await cycle.send({"type": "http.response.body", "body": b""})
    assert (transport.writes, events) == ([], [])
