"""uvicorn's httptools protocol with bounded request heads (``HeadLimits``: 414/431
problem+json before the app sees the request). Responses are uvicorn's own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from random import getrandbits

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True)
class HeadLimits:
    """Bounds on a request's head, checked as it arrives, before the app sees it."""

    target_bytes: int = 8192  # the request target (path and query): 414 beyond
    header_count: int = 100  # 431 beyond
    header_line_bytes: int = 8192  # one header's name and value: 431 beyond
    header_bytes: int = 16384  # all headers together: 431 beyond

    @property
    def head_bytes(self) -> int:
        """The most bytes a head within the limits can take (request line and CRLFs)."""
        return self.target_bytes + self.header_bytes + 4 * self.header_count + 64


class HeadTooLarge(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_TITLES = {414: "URI too long", 431: "Request header fields too large"}


def head_refusal(status: int, detail: str) -> bytes:
    """A whole HTTP/1.1 response refusing a head: problem+json, then the connection ends."""
    request_id = getrandbits(128).to_bytes(16, "big").hex()
    body = orjson.dumps(
        {
            "type": "https://gateway.example/problems/bad-user-input",
            "title": _TITLES[status],
            "status": status,
            "detail": detail,
            "code": "BAD_USER_INPUT",
            "request_id": request_id,
        }
    )
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/problem+json\r\n",
            b"content-length: ",
            str(len(body)).encode(),
            b"\r\n",
            b"x-request-id: ",
            request_id.encode(),
            b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GatewayHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with bounded request heads.

    httptools gathers a header's value piece by piece as bytes arrive, by concatenation,
    before the protocol hears of it: a 64 MB header held the event loop for seconds and
    every other request (health probes too) with it. So the head is fed to the parser in
    pieces no longer than what the limits allow in all, and a head that has not ended
    within them is refused 431 (414 while still in its request line) without parsing
    further; the request target, each header and their number are checked as the
    parser reports them. The refusal is problem+json and closes the connection.
    """

    limits = HeadLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own: a stream server hands a Transport
        super().connection_made(transport)
        self.in_head = True
        self.head_received = 0
        self.line_done = False
        self.refusal: bytes | None = None  # waiting for the answers before it

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # refused: nothing after the refused head is read
        if not self.in_head:
            self._feed(data)  # a body, or the next request's head (limits still apply)
            return
        room = self.limits.head_bytes
        while data and self.in_head:
            if self.head_received >= room:
                if self.line_done:
                    self._refuse(
                        431,
                        "The request's headers are over the limit of "
                        f"{self.limits.header_bytes} bytes.",
                    )
                else:
                    self._refuse(
                        414,
                        "The request target is over the limit of "
                        f"{self.limits.target_bytes} bytes.",
                    )
                return
            piece, data = data[: room - self.head_received], data[room - self.head_received :]
            self.head_received += len(piece)
            if not self._feed(piece):
                return
            self.line_done = self.line_done or b"\n" in piece
        if data:
            self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """uvicorn's ``data_received``, answering a refused head itself."""
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            refused = exc.__context__ or exc.__cause__
            if isinstance(refused, HeadTooLarge):
                self._refuse(refused.status, refused.detail)
            else:
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return not self.transport.is_closing()

    def _refuse(self, status: int, detail: str) -> None:
        self.in_head = False
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.pipeline or (cycle is not None and not cycle.response_complete):
            # Pipelined behind requests still being answered: after their answers.
            self.refusal = head_refusal(status, detail)
            self.flow.pause_reading()
            return
        self.transport.write(head_refusal(status, detail))
        self.transport.close()

    def on_response_complete(self) -> None:
        if self.refusal is not None and not self.pipeline:
            self.server_state.total_requests += 1
            if not self.transport.is_closing():
                self.transport.write(self.refusal)
                self.transport.close()
            return
        super().on_response_complete()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_received = 0
        self.header_total = 0
        self.line_done = False

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.target_bytes:
            raise HeadTooLarge(
                414, f"The request target is over the limit of {self.limits.target_bytes} bytes."
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        size = len(name) + len(value)
        self.header_total = getattr(self, "header_total", 0) + size
        if size > self.limits.header_line_bytes:
            raise HeadTooLarge(
                431, f"A request header is over the limit of {self.limits.header_line_bytes} bytes."
            )
        if len(self.headers) >= self.limits.header_count:
            raise HeadTooLarge(
                431, f"The request has more than {self.limits.header_count} headers."
            )
        if self.header_total > self.limits.header_bytes:
            raise HeadTooLarge(
                431,
                f"The request's headers are over the limit of {self.limits.header_bytes} bytes.",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    @classmethod
    def with_limits(cls, limits: HeadLimits) -> type[GatewayHttpProtocol]:
        """This protocol with ``limits`` (uvicorn makes protocols from a class)."""
        return type(cls.__name__, (cls,), {"limits": limits})
