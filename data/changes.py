"""What a write changed, handed on only once its transaction has committed.

While they work, services record in their session the cache tags a write makes stale
(``touch``) and the events subscribers wait for (``emit``). ``Database.write`` hands both
to its commit listeners after a successful commit, before the request returns, and
drops them on rollback: nothing is announced that did not happen.

Tag vocabulary (the response cache keys entries by the versions of the tags they read):

- ``catalog``: anything a catalog read can show (products, categories, reviews, and
  user names, which appear as review authors);
- ``product:<id>``, ``category:<id>``, ``user:<id>``: one object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

CATALOG = "catalog"

_TAGS = "gateway.touched"
_EVENTS = "gateway.events"
_PRINCIPALS = "gateway.principals"


@dataclass(frozen=True)
class OrderEvent:
    """An order was placed or changed status."""

    order_id: int
    customer_id: int
    status: str
    previous_status: str | None
    at: datetime


@dataclass
class Changes:
    tags: set[str] = field(default_factory=set)
    events: list[Any] = field(default_factory=list)
    # Keys of principals whose remembered credentials must be forgotten
    # (``user:<id>``, ``login:<family>``, ``api_key:<id>``; see ``data.principals``).
    principals: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.tags or self.events or self.principals)


CommitListener = Callable[[Changes], Awaitable[None]]


def touch(session: AsyncSession, *tags: str) -> None:
    """Marks cache tags stale once this session commits."""
    session.info.setdefault(_TAGS, set()).update(tags)


def emit(session: AsyncSession, event: Any) -> None:
    """Queues an event to publish once this session commits."""
    session.info.setdefault(_EVENTS, []).append(event)


def principal_changed(session: AsyncSession, *keys: str) -> None:
    """Marks principals whose remembered credentials go stale once this session commits."""
    session.info.setdefault(_PRINCIPALS, set()).update(keys)


def take_changes(session: AsyncSession) -> Changes:
    """What the session recorded, cleared from it."""
    return Changes(session.info.pop(_TAGS, set()), session.info.pop(_EVENTS, []),
                   session.info.pop(_PRINCIPALS, set()))


def product_changed(session: AsyncSession, product_id: int) -> None:
    touch(session, CATALOG, f"product:{product_id}")


def category_changed(session: AsyncSession, category_id: int) -> None:
    touch(session, CATALOG, f"category:{category_id}")


def user_changed(session: AsyncSession, user_id: int) -> None:
    """A user's public face (the name shown on reviews) or private fields changed."""
    touch(session, CATALOG, f"user:{user_id}")
    principal_changed(session, f"user:{user_id}")  # its role or active flag may have
