"""In-process clients for streaming answers: SSE and WebSockets driven over raw ASGI.

httpx's ``ASGITransport`` waits for a whole response, which an event stream never
finishes; these call the app directly in the test's event loop, so a test can read a
stream message by message, disconnect, and see what the server did about it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

READ_TIMEOUT = 10.0


def _scope(kind: str, path: str, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    path, _, query = path.partition("?")
    return {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *raw],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        **extra,
    }


class SSE:
    """A streaming GET: the status and headers, then the SSE messages one by one."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.finished = False
        self._buffer = b""
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._started = asyncio.Event()
        self._disconnect = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if not hasattr(self, "_sent_request"):
            self._sent_request = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
            self._started.set()
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")
            self._chunks.put_nowait(message.get("body", b""))
            if not message.get("more_body", False):
                self.finished = True
                self._chunks.put_nowait(None)

    async def next_message(self, timeout: float = READ_TIMEOUT) -> str | None:
        """The next whole SSE block (lines up to a blank line), or None at the end."""
        while b"\n\n" not in self._buffer:
            chunk = await asyncio.wait_for(self._chunks.get(), timeout)
            if chunk is None:
                return None
            self._buffer += chunk
        block, self._buffer = self._buffer.split(b"\n\n", 1)
        return block.decode()

    async def next_event(self, timeout: float = READ_TIMEOUT) -> dict[str, Any] | None:
        """The next block that is an event (not a comment or retry), parsed."""
        while True:
            block = await self.next_message(timeout)
            if block is None:
                return None
            fields = parse_block(block)
            if "event" in fields:
                return fields

    def disconnect(self) -> None:
        self._disconnect.set()


def parse_block(block: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for line in block.split("\n"):
        name, _, value = line.partition(":")
        fields[name or "comment"] = value.removeprefix(" ")
    if "data" in fields:
        fields["json"] = orjson.loads(fields["data"])
    return fields


@asynccontextmanager
async def open_sse(
    app: Any, path: str, headers: dict[str, str] | None = None
) -> AsyncIterator[SSE]:
    """Opens ``GET path``; on exit the client disconnects and the app must finish."""
    sse = SSE()
    scope = _scope("http", path, headers or {}, method="GET")
    task = asyncio.create_task(app(scope, sse.receive, sse.send))
    try:
        await asyncio.wait_for(sse._started.wait(), READ_TIMEOUT)
        yield sse
    finally:
        sse.disconnect()
        try:
            await asyncio.wait_for(task, READ_TIMEOUT)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


class WebSocket:
    """The client end of an ASGI WebSocket."""

    def __init__(self) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None

    async def send_json(self, data: dict[str, Any]) -> None:
        self.to_app.put_nowait({"type": "websocket.receive", "text": orjson.dumps(data).decode()})

    async def receive_json(self, timeout: float = READ_TIMEOUT) -> dict[str, Any]:
        message = await asyncio.wait_for(self.from_app.get(), timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            raise ConnectionClosed(self.close_code, message.get("reason", ""))
        # graphql-transport-ws speaks JSON in text frames; its clients refuse binary ones.
        assert message.get("bytes") is None, f"a binary frame: {message['bytes']!r}"
        return orjson.loads(message["text"])

    async def wait_closed(self, timeout: float = READ_TIMEOUT) -> int:
        while True:
            message = await asyncio.wait_for(self.from_app.get(), timeout)
            if message["type"] == "websocket.close":
                self.close_code = message.get("code", 1000)
                return self.close_code


class ConnectionClosed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


@asynccontextmanager
async def open_websocket(
    app: Any, path: str, subprotocol: str, headers: dict[str, str] | None = None
) -> AsyncIterator[WebSocket]:
    """A WebSocket handshake to ``path``; on exit the client goes away."""
    ws = WebSocket()
    ws.to_app.put_nowait({"type": "websocket.connect"})
    scope = _scope(
        "websocket",
        path,
        {**(headers or {}), "sec-websocket-protocol": subprotocol},
        subprotocols=[subprotocol],
    )

    async def send(message: dict[str, Any]) -> None:
        ws.from_app.put_nowait(message)

    task = asyncio.create_task(app(scope, ws.to_app.get, send))
    try:
        accepted = await asyncio.wait_for(ws.from_app.get(), READ_TIMEOUT)
        assert accepted["type"] == "websocket.accept", accepted
        yield ws
    finally:
        ws.to_app.put_nowait({"type": "websocket.disconnect", "code": 1000})
        try:
            await asyncio.wait_for(task, READ_TIMEOUT)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
