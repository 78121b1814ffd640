"""The front door: the outermost layer of every HTTP request, in one pass.

It was three middlewares (request id, access log and metrics, security headers), each
wrapping ``send`` and rewriting the headers with ``MutableHeaders``; at a few thousand
requests a second their bookkeeping cost more than the compiled lane's work.
One layer now:

- checks ``Host`` against ``TRUSTED_HOSTS`` (``gateway.http.security.TrustedHosts``; a
  refusal is answered inside, so it is logged and carries the headers below);
- takes a sane ``X-Request-ID`` from the caller or makes one, stores it in
  ``state["request_id"]`` (WebSockets too), binds it into structlog's context (every
  line logged while the request runs carries it) and echoes it;
- marks every answer to a request with credentials ``Cache-Control: no-store`` (unless
  the answer says otherwise): what a signed-in principal reads depends on who they are;
- adds the security headers an answer does not set itself (``X-Cache: BYPASS`` for
  answers that never reached the response cache) and a ``Content-Security-Policy``:
  the page policy for GraphiQL's and the docs' HTML, the strict one for everything else;
- times the request and records it: the metrics and one access line, with the route
  template FastAPI leaves in ``scope["route"]`` (never the raw path), the principal from
  ``state["actor"]`` and the GraphQL operation from ``state["graphql"]``.

An exception that escapes the app is logged here once, with its traceback, and answered
with a 500 problem; it is not re-raised, so the server does not log it a second time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from contextvars import ContextVar
from random import getrandbits
from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import STRUCTLOG_KEY_PREFIX
from uvicorn.protocols.utils import ClientDisconnected

from data.outages import unavailable_from
from gateway.http.limits import outage_answer
from gateway.http.problems import internal_error
from gateway.http.security import DOCS_CSP, HEADERS, PAGE_CSP, PAGE_PATHS, STRICT_CSP, TrustedHosts
from gateway.observability.logging import SAFE_REQUEST_ID, AccessLog
from gateway.observability.metrics import UNMATCHED, Metrics

log = structlog.get_logger("gateway.access")
errors = structlog.get_logger("gateway.errors")
CLIENT_CLOSED = 499  # nginx's status for a request the client abandoned

_SECURITY = tuple((name.lower().encode(), value.encode()) for name, value in HEADERS.items())
_CSP = b"content-security-policy"
_STRICT = (_CSP, STRICT_CSP.encode())
_PAGE = (_CSP, PAGE_CSP.encode())
_DOCS = (_CSP, DOCS_CSP.encode())
_REQUEST_ID = b"x-request-id"
_CACHE_CONTROL = b"cache-control"
_NO_STORE = (_CACHE_CONTROL, b"no-store")
# The variable ``structlog.contextvars.bind_contextvars(request_id=...)`` would set (its
# merge reads every ``structlog_``-prefixed variable): set and reset directly, as it is on
# every request. Nothing else binds ``request_id``.
REQUEST_ID: ContextVar[Any] = ContextVar(f"{STRUCTLOG_KEY_PREFIX}request_id", default=...)


def route_of(scope: Scope) -> str:
    """The matched route's template with the prefixes of the routers that include it.

    FastAPI leaves the innermost route in ``scope["route"]``, whose template lacks the
    including routers' prefixes (``/api/v1``); those are literal, so they are the leading
    segments of the path that the template does not account for.
    """
    route = scope.get("route")
    # ``gateway.cache.asgi.Route``: worked out once
    label: str | None = getattr(route, "label", None)
    if label is not None:
        return label
    template = getattr(route, "path_format", getattr(route, "path", None))
    if not isinstance(template, str):
        return UNMATCHED
    params = scope.get("path_params", {})
    if any("/" in str(value) for value in params.values()):
        return template  # a {name:path} parameter: segments cannot be counted
    segments = scope["path"].split("/")
    extra = len(segments) - len(template.split("/"))
    return ("/".join(segments[: extra + 1]) + template if extra > 0 else template) or "/"


def _personal(state: dict[str, Any]) -> bool:
    """Whether the answer may depend on who asks: the request carried credentials."""
    actor = state.get("actor")
    return (actor is not None and not actor.is_anonymous) or (
        state.get("identity_error") is not None
    )


def private(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Cache-Control: no-store`` unless the answer set its own: an
    answer for a signed-in principal (their profile, their orders, the stock only staff
    see) must not be kept by a browser or a shared cache for someone else."""
    for name, _ in headers:
        if name.lower() == _CACHE_CONTROL:
            return headers
    headers.append(_NO_STORE)
    return headers


def principal_of(state: dict[str, Any]) -> str:
    return str(getattr(state.get("actor"), "label", "anonymous"))


def new_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID:
            given: str = value.decode("latin-1")
            if SAFE_REQUEST_ID.fullmatch(given):
                return given
            break
    # Unique, not secret: the Mersenne Twister (reseeded in every forked worker) spares a
    # getrandom system call per request.
    return getrandbits(128).to_bytes(16, "big").hex()  # 32 hex digits, as "%032x"


def front_headers(headers: Any, path: str) -> tuple[list[tuple[bytes, bytes]], bool]:
    """The answer's headers with the security headers it lacks added and without a
    request id (the caller sets it), and whether the answer is HTML."""
    out: list[tuple[bytes, bytes]] = []
    present: set[bytes] = set()
    html = False
    for name, value in headers:
        lower = name.lower()
        if lower == _REQUEST_ID:
            continue
        if lower == b"content-type":
            html = value.startswith(b"text/html")
        present.add(lower)
        out.append((name, value))
    for header in _SECURITY:
        if header[0] not in present:
            out.append(header)
    if _CSP not in present:
        if html and path in PAGE_PATHS:
            out.append(_PAGE if path == "/graphql" else _DOCS)
        else:
            out.append(_STRICT)
    return out, html


class FrontHeaders:
    """``front_headers`` for the headers of an answer, remembered for headers given as a
    tuple: the compiled lane sends the same tuple for every repeat of a remembered
    answer (``gateway.compiled.rest.RestPlan.memo``). Kept by identity, with the tuple itself
    (so that its id cannot be reused while kept), for non-HTML answers, whose headers do
    not depend on the path; bounded."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.known: dict[int, tuple[tuple[Any, ...], list[tuple[bytes, bytes]]]] = {}

    def __call__(self, headers: Any, path: str, request_id: bytes) -> list[tuple[bytes, bytes]]:
        if type(headers) is tuple:
            known = self.known.get(id(headers))
            if known is not None and known[0] is headers:
                return [*known[1], (_REQUEST_ID, request_id)]
        out, html = front_headers(headers, path)
        if type(headers) is tuple and not html:
            if len(self.known) >= self.size:
                self.known.clear()
            self.known[id(headers)] = (headers, out.copy())
        out.append((_REQUEST_ID, request_id))
        return out


class FrontDoor:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        trusted_hosts: list[str] | None = None,
        log_flush_seconds: float = 0.0,
        tuned_access_lines: bool = True,
    ) -> None:
        self.app = app
        self.hosts = None if trusted_hosts is None else TrustedHosts(app, trusted_hosts)
        self.metrics = metrics
        self.access = AccessLog("gateway.access", log_flush_seconds, tuned=tuned_access_lines)
        self.headers = FrontHeaders()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        app = self.app if self.hosts is None or kind == "lifespan" else self.hosts.app_for(scope)
        if kind != "http":
            if kind == "websocket":
                scope.setdefault("state", {})["request_id"] = new_request_id(scope)
            await app(scope, receive, send)
            return
        request_id = new_request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)  # structlog's bind_contextvars(request_id=...)
        raw_id = request_id.encode("latin-1")
        path = scope["path"]
        front = self.headers
        status = 500
        started = False

        answered = False  # the last body message has gone out

        def send_front(message: Message) -> Awaitable[None]:
            # Not a coroutine itself: the server's ``send`` is the caller's to await, one
            # coroutine fewer per message.
            nonlocal status, started, answered
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = front(message.get("headers", ()), path, raw_id)
                if _personal(state):
                    headers = private(headers)
                message["headers"] = headers
            elif not message.get("more_body"):
                answered = True
            return send(message)

        disconnected = False

        async def receive_and_watch() -> Message:
            nonlocal disconnected
            message = await receive()
            # Servers report a disconnect once the answer is complete too (static files
            # listen for it): only one before that is a client that went away.
            if message["type"] == "http.disconnect" and not answered:
                disconnected = True
            return message

        begin = time.perf_counter()
        self.metrics.request_started()
        try:
            await app(scope, receive_and_watch, send_front)
        except Exception as exc:
            if disconnected or isinstance(exc, ClientDisconnect | ClientDisconnected):
                # The client went away (mid-upload, say): nothing to answer, nothing broken.
                log.info("client_disconnected", method=scope["method"], route=route_of(scope))
                status = CLIENT_CLOSED
            else:
                # A database outage is logged when it begins and ends (data.outages), not
                # with a traceback per request.
                outage = unavailable_from(exc)
                if outage is None:
                    errors.exception(
                        "unhandled_exception", method=scope["method"], route=route_of(scope)
                    )
                status = 500 if outage is None else outage.status
                if not started:
                    answer = (
                        internal_error(Request(scope))
                        if outage is None
                        else outage_answer(scope, outage)
                    )
                    await answer(scope, receive, send_front)
        finally:
            if disconnected and status != CLIENT_CLOSED:
                # Whatever the app made of a body cut short (FastAPI: a 400), nobody got it.
                log.info("client_disconnected", method=scope["method"], route=route_of(scope))
                status = CLIENT_CLOSED
            seconds = time.perf_counter() - begin
            self.metrics.request_finished()
            self._record(scope, state, status, seconds)
            REQUEST_ID.reset(token)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = route_of(scope)
        method = scope["method"]
        self.metrics.observe_request(method, route, status, seconds)
        operation = state.get("graphql")
        if operation is not None:
            self.metrics.observe_operation(
                operation["name"], operation["type"], operation["outcome"], seconds
            )
            operation = (operation["name"], operation["type"], operation["outcome"])
        # To the hundredth of a millisecond (``round(ms, 2)`` up to ties, at half the cost).
        self.access.request(
            method,
            route,
            status,
            int(seconds * 100_000 + 0.5) / 100,
            principal_of(state),
            operation,
            REQUEST_ID,
        )
