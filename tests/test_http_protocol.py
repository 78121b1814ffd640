"""The gateway's HTTP protocol (gateway.http.protocol) answers a real client, keep-alive
and all, with uvicorn's own cycles and transport."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.http.protocol import GatewayHttpProtocol


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


async def test_the_protocol_serves_keep_alive_requests_whole() -> None:
    seen: list[tuple[type, type]] = []

    class Recording(GatewayHttpProtocol):
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
        assert len(seen) == 3
        for cycle_class, _transport_class in seen:
            assert cycle_class is RequestResponseCycle
    finally:
        server.should_exit = True
        await serving
