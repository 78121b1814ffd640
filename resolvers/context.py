"""The typed per-request GraphQL context, built by a FastAPI dependency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from data.actor import ANONYMOUS, Actor
from data.db import Database
from data.errors import DomainError
from data.loaders import Loaders, build_loaders
from data.tokens import TokenIssuer


class Context(BaseContext):
    def __init__(self, db: Database, tokens: TokenIssuer, actor: Actor,
                 identity_error: DomainError | None) -> None:
        super().__init__()
        self.db = db
        self.tokens = tokens
        self.actor = actor
        self.identity_error = identity_error
        self.loaders: Loaders = build_loaders(db, actor)

    def counter(
        self, count: Callable[..., Awaitable[int]], **kwargs: Any
    ) -> Callable[[], Awaitable[int]]:
        """A ``totalCount`` that runs ``count(session, actor, **kwargs)`` only when asked."""

        async def run() -> int:
            async with self.db.read() as session:
                return await count(session, self.actor, **kwargs)

        return run


async def get_context(request: Request) -> Context:
    """The request's database, the principal the identity middleware found, and loaders."""
    return Context(
        request.app.state.db,
        request.app.state.tokens,
        getattr(request.state, "actor", ANONYMOUS),
        getattr(request.state, "identity_error", None),
    )


Info = StrawberryInfo[Context, None]
