"""uvicorn's httptools protocol, its writes gathered into one per event-loop turn.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body when it sends ``http.response.body``: two system
calls per response, each a wake-up of the client on loopback. Over a
``gateway.coalescing.CoalescingTransport`` a whole small response goes out in one.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.coalescing import CoalescingTransport


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))
