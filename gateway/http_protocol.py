"""uvicorn's httptools protocol, its writes gathered into one per event-loop turn and its
response heads written in one pass.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body when it sends ``http.response.body``: two system
calls per response, each a wake-up of the client on loopback. Over a
``gateway.coalescing.CoalescingTransport`` a whole small response goes out in one.

uvicorn also checks every header of a response with two regular expressions and
lower-cases its name, one header at a time; the gateway's answers carry ten headers
(security headers, request id, ETag), so that was a few microseconds of every request
(issue 9). ``GatewayCycle`` checks all the names at once and all the values at once for
the bytes those expressions refuse, and writes the head itself; a head those checks do not clear
(an invalid or an upper-case name, an invalid value) and every other case (back
pressure, a second start, uvicorn's own access log) go to uvicorn's ``send``, which
answers them as it always did.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from gateway.coalescing import CoalescingTransport

_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"
_CONNECTION = b"connection"
_FRAMING = frozenset({_CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION})
# The bytes uvicorn's expressions refuse in a header's name and in its value, read off
# the expressions themselves: ``bytes.translate`` deletes them in one C pass, where a
# regular-expression search costs tens of instructions a byte.
_BAD_NAME = bytes(b for b in range(256) if HEADER_RE.search(bytes([b])))
_BAD_VALUE = bytes(b for b in range(256) if HEADER_VALUE_RE.search(bytes([b])))


class GatewayCycle(RequestResponseCycle):
    """uvicorn's request-response cycle with a one-pass ``http.response.start``."""

    async def send(self, message: Any) -> None:
        if self.disconnected or self.flow.write_paused or self.access_log:
            await super().send(message)
        elif message["type"] == "http.response.start" and not self.response_started:
            if not self._start(message):
                await super().send(message)  # uvicorn says what is wrong, or lower-cases
        elif (message["type"] == "http.response.body" and self.chunked_encoding is False
              and not self.response_complete and not message.get("more_body", False)
              and len(body := message.get("body", b"")) == self.expected_content_length
              and self.scope["method"] != "HEAD"):
            # The whole body at once, as long as its Content-Length said: uvicorn's
            # ``send`` without its other cases.
            self.expected_content_length = 0
            self.transport.write(body)
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()
        else:
            await super().send(message)

    def _start(self, message: Any) -> bool:
        """Writes the head; ``False`` (and nothing done) where uvicorn must look closer."""
        headers = [*self.default_headers, *message.get("headers", ())]
        names = b"".join([name for name, _ in headers])
        values = b"".join([value for _, value in headers])
        if (not names.islower() or len(names.translate(None, _BAD_NAME)) != len(names)
                or len(values.translate(None, _BAD_VALUE)) != len(values)):
            return False
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            if name in _FRAMING:  # as uvicorn's send
                if name == _CONTENT_LENGTH:
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value.decode())
                        self.chunked_encoding = False
                elif name == _TRANSFER_ENCODING:
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [token.lower().strip() for token in value.split(b",")]:
                    self.keep_alive = False
                    has_connection_close = True
            content += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (self.chunked_encoding is None and self.scope["method"] != "HEAD"
                and status_code not in (204, 304)):
            self.chunked_encoding = True  # neither a length nor an encoding given
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))
        return True


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` over a ``CoalescingTransport``, its cycles ``GatewayCycle``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn makes the cycle in ``on_headers_complete``; every cycle, pipelined ones
        # too, starts here. GatewayCycle adds no state, only its ``send``.
        cycle.__class__ = GatewayCycle
        super()._start_asgi_task(cycle, app)
