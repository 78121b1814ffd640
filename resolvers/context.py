"""The typed per-request GraphQL context, built by a FastAPI dependency."""

from __future__ import annotations

from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo
from starlette.requests import Request

from data.actor import ANONYMOUS, Actor
from data.db import Database
from data.errors import DomainError
from data.loaders import Loaders, build_loaders


class Context(BaseContext):
    def __init__(self, db: Database, actor: Actor, identity_error: DomainError | None) -> None:
        super().__init__()
        self.db = db
        self.actor = actor
        self.identity_error = identity_error
        self.loaders: Loaders = build_loaders(db, actor)


async def get_context(request: Request) -> Context:
    """The request's database, the principal the identity middleware found, and loaders."""
    return Context(
        request.app.state.db,
        getattr(request.state, "actor", ANONYMOUS),
        getattr(request.state, "identity_error", None),
    )


Info = StrawberryInfo[Context, None]
