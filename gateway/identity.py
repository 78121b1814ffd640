"""Identity: the request's principal, resolved once, before any handler runs.

The middleware stores an ``Actor`` (or the authentication error to report) in the
request state; REST dependencies and the GraphQL context read it from there.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from data.actor import ANONYMOUS


class IdentityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state = scope.setdefault("state", {})
            state["actor"] = ANONYMOUS
            state["identity_error"] = None
        await self.app(scope, receive, send)
