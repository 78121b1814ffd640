"""Identity: the request's principal, resolved once, before any handler runs.

``IdentityMiddleware`` reads ``Authorization: Bearer`` or ``X-API-Key``, asks the
service layer who that is (``auth.resolve_credentials``, which the GraphQL WebSocket
connect hook uses too), and stores the ``Actor`` (or the authentication error to
report) in the request state; REST dependencies and the GraphQL context read it there.
"""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from jwt.algorithms import get_default_algorithms
from starlette.types import ASGIApp, Receive, Scope, Send

from data.actor import ANONYMOUS
from data.errors import DomainError
from data.principals import PrincipalCache
from data.services import auth
from data.tokens import TokenIssuer
from gateway.settings import Settings


def _pem(value: str) -> str:
    return value if value.lstrip().startswith("-----BEGIN") else Path(value).read_text()


def build_token_issuer(settings: Settings) -> TokenIssuer:
    """The token issuer the settings describe (HS256 secret, or an RS256/ES256 key pair)."""
    if settings.jwt_algorithm == "HS256":
        signing: Any = settings.signing_secret
        verifying: Any = signing
    else:
        algorithm = get_default_algorithms()[settings.jwt_algorithm]
        assert settings.jwt_private_key
        assert settings.jwt_public_key
        signing = algorithm.prepare_key(_pem(settings.jwt_private_key))
        verifying = algorithm.prepare_key(_pem(settings.jwt_public_key))
    return TokenIssuer(
        algorithm=settings.jwt_algorithm,
        signing_key=signing,
        verifying_key=verifying,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl=settings.access_token_ttl,
        refresh_ttl=settings.refresh_token_ttl,
    )


def principal_cache(settings: Settings) -> PrincipalCache:
    """Resolved credentials remembered per process; on only where every process hears of
    every revocation (through Redis, or when one process is all there is)."""
    shared = settings.redis_url is not None or settings.web_concurrency == 1
    return PrincipalCache(
        maxsize=settings.principal_cache_size, ttl=settings.principal_cache_seconds, enabled=shared
    )


class IdentityMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself without credentials: the app's is the caller's to await,
        # one frame fewer for every suspension of the request to pass through.
        if scope["type"] in ("http", "websocket"):
            authorization = api_key = None
            for name, value in scope["headers"]:  # no dict: most requests carry neither
                if name == b"authorization":
                    authorization = value
                elif name == b"x-api-key":
                    api_key = value
            state = scope.setdefault("state", {})
            state["actor"], state["identity_error"] = ANONYMOUS, None
            if authorization is not None or api_key is not None:
                return self._resolved(scope, receive, send, state, authorization, api_key)
        return self.app(scope, receive, send)

    async def _resolved(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        state: dict[str, Any],
        authorization: bytes | None,
        api_key: bytes | None,
    ) -> None:
        app_state = scope["app"].state
        try:
            state["actor"] = await auth.resolve_credentials(
                app_state.db,
                app_state.tokens,
                authorization.decode("latin-1") if authorization is not None else None,
                api_key.decode("latin-1") if api_key is not None else None,
                app_state.principals,
            )
        except DomainError as exc:
            state["identity_error"] = exc
        await self.app(scope, receive, send)
