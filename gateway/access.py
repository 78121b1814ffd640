"""The access middleware: one log line and the metrics for every HTTP request.

It binds the request id into structlog's context (so every line logged while the
request runs carries it), times the request, reads the route template FastAPI leaves
in ``scope["route"]`` (never the raw path), the principal from ``state["actor"]`` and
the GraphQL operation the schema extension leaves in ``state["graphql"]``.

An exception that escapes the app is logged here once, with its traceback, and answered
with a 500 problem; it is not re-raised, so the server does not log it a second time.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.utils import ClientDisconnected

from gateway.metrics import UNMATCHED, Metrics
from gateway.problems import internal_error

log = structlog.get_logger("gateway.access")
errors = structlog.get_logger("gateway.errors")
CLIENT_CLOSED = 499  # nginx's status for a request the client abandoned


def route_of(scope: Scope) -> str:
    """The matched route's template with the prefixes of the routers that include it.

    FastAPI leaves the innermost route in ``scope["route"]``, whose template lacks the
    including routers' prefixes (``/api/v1``); those are literal, so they are the leading
    segments of the path that the template does not account for.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", getattr(route, "path", None))
    if not isinstance(template, str):
        return UNMATCHED
    params = scope.get("path_params", {})
    if any("/" in str(value) for value in params.values()):
        return template  # a {name:path} parameter: segments cannot be counted
    segments = scope["path"].split("/")
    extra = len(segments) - len(template.split("/"))
    return ("/".join(segments[: extra + 1]) + template if extra > 0 else template) or "/"


def principal_of(state: dict[str, Any]) -> str:
    return str(getattr(state.get("actor"), "label", "anonymous"))


# Pool gauges are read at most this often per request stream (and on every scrape).
POOL_GAUGE_SECONDS = 1.0


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.pools_observed_at = float("-inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        tokens = structlog.contextvars.bind_contextvars(request_id=state.get("request_id"))
        status = 500
        started = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        disconnected = False

        async def receive_and_watch() -> Message:
            nonlocal disconnected
            message = await receive()
            disconnected = disconnected or message["type"] == "http.disconnect"
            return message

        begin = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive_and_watch, send_and_watch)
        except Exception as exc:
            if disconnected or isinstance(exc, ClientDisconnect | ClientDisconnected):
                # The client went away (mid-upload, say): nothing to answer, nothing broken.
                log.info("client_disconnected", method=scope["method"], route=route_of(scope))
                status = CLIENT_CLOSED
            else:
                errors.exception("unhandled_exception", method=scope["method"],
                                 route=route_of(scope))
                status = 500
                if not started:
                    await internal_error(Request(scope))(scope, receive, send)
        finally:
            if disconnected and status != CLIENT_CLOSED:
                # Whatever the app made of a body cut short (FastAPI: a 400), nobody got it.
                log.info("client_disconnected", method=scope["method"], route=route_of(scope))
                status = CLIENT_CLOSED
            seconds = time.perf_counter() - begin
            self.metrics.in_flight.dec()
            self._record(scope, state, status, seconds)
            structlog.contextvars.reset_contextvars(**tokens)

    def _record(self, scope: Scope, state: dict[str, Any], status: int,
                seconds: float) -> None:
        route = route_of(scope)
        self.metrics.observe_request(scope["method"], route, status, seconds)
        # Under gunicorn each worker's pool gauges are its own file: keep them current,
        # to the second (reading the pools on every request cost more than the probe).
        now = time.monotonic()
        if now - self.pools_observed_at >= POOL_GAUGE_SECONDS:
            self.pools_observed_at = now
            self.metrics.observe_pools(
                getattr(getattr(scope.get("app"), "state", None), "db", None))
        fields: dict[str, Any] = {
            "method": scope["method"], "route": route, "status": status,
            "duration_ms": round(seconds * 1000, 2), "principal": principal_of(state),
        }
        operation = state.get("graphql")
        if operation is not None:
            self.metrics.observe_operation(operation["name"], operation["type"],
                                           operation["outcome"], seconds)
            fields.update(operation=operation["name"], operation_type=operation["type"],
                          outcome=operation["outcome"])
        log.info("request", **fields)
