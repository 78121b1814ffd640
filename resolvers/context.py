"""The typed per-request GraphQL context, built by a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from data.actor import ANONYMOUS, Actor
from data.attempts import NO_BACKOFF, LoginAttempts
from data.db import Database
from data.errors import DomainError
from data.events import EventBus
from data.loaders import Loaders, build_loaders
from data.tokens import TokenIssuer
from resolvers.fast_reads import FastReads


class Context(BaseContext):
    def __init__(
        self,
        db: Database,
        tokens: TokenIssuer,
        actor: Actor,
        identity_error: DomainError | None,
        events: EventBus | None = None,
    ) -> None:
        super().__init__()
        self.db = db
        self.tokens = tokens
        self.actor = actor
        self.identity_error = identity_error
        self._loaders: Loaders | None = None  # built on first use: a compiled read needs none
        self.events = events
        self.login_attempts: LoginAttempts = NO_BACKOFF
        self.compiled_reads = False  # set by get_context from the app's settings
        self.fast_reads: FastReads | None = None  # the app's hook, if any

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = build_loaders(self.db, self.actor)
        return self._loaders

    @loaders.setter
    def loaders(self, loaders: Loaders) -> None:
        self._loaders = loaders

    def use_actor(self, actor: Actor) -> None:
        """Another principal for this context (a WebSocket's ``connection_init``)."""
        self.actor, self.identity_error = actor, None
        self.refresh_loaders()

    def refresh_loaders(self) -> None:
        """Empty loaders: a long-lived context (a subscription) must not serve old rows."""
        self._loaders = None

    def counter(
        self, count: Callable[..., Awaitable[int]], **kwargs: Any
    ) -> Callable[[], Awaitable[int]]:
        """A ``totalCount`` that runs ``count(session, actor, **kwargs)`` only when asked."""

        async def run() -> int:
            async with self.db.read() as session:
                return await count(session, self.actor, **kwargs)

        return run


async def get_context(request: HTTPConnection) -> Context:
    """The request's database, the principal the identity middleware found, and loaders.

    ``request`` is the HTTP request, or the WebSocket of a subscription.
    """
    context = Context(
        request.app.state.db,
        request.app.state.tokens,
        getattr(request.state, "actor", ANONYMOUS),
        getattr(request.state, "identity_error", None),
        getattr(request.app.state, "events", None),
    )
    attempts_for = getattr(request.app.state, "login_attempts_for", None)
    context.login_attempts = NO_BACKOFF if attempts_for is None else attempts_for(request.scope)
    # The compiled lane ran this request's statement already (an object was not found):
    # the resolvers answer without running it again.
    context.compiled_reads = getattr(request.app.state, "compiled_reads", False) and not getattr(
        request.state, "compiled_missed", False
    )
    context.fast_reads = getattr(request.app.state, "graphql_fast_reads", None)
    return context


Info = StrawberryInfo[Context, None]
