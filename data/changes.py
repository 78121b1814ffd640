"""What a write changed, handed on only once its transaction has committed.

While they work, services record in their session the cache tags a write makes stale
(``touch``) and the events subscribers wait for (``emit``). ``Database.write`` hands both
to its commit listeners after a successful commit, before the request returns, and
drops them on rollback: nothing is announced that did not happen.

Tag vocabulary. The response cache keys each entry by the versions of the tags its
request depends on (``gateway.cache.middleware`` derives them from the request alone,
before the answer is computed), and a write bumps only the tags of what a reader can see
change:

- ``catalog``: every entry. Bumped by the rare writes whose reach is wide: a category
  created, renamed or deleted (categories show in product answers) and a user's name
  (it shows on every review the user wrote).
- ``product:<id>``: answers about that one product (its detail page, its reviews, a
  GraphQL ``product(id:)`` and what it nests). Bumped by any change everyone may see of
  it: its fields, its reviews, creation, deletion, and ``inStock`` flipping.
- ``lists``: every other answer (lists, filters, sorts, category pages, anything that
  can reach beyond the products it names). Bumped with every ``product:<id>`` bump, so
  it stands for "any product changed visibly": a price change can move a product into a
  ``min_price`` page or reorder a sort anywhere.
- ``stock:<id>`` and ``stock``: the same two levels for ``stock``, which only staff and
  ``catalog:read`` keys see; their entries depend on these too. An order that leaves a
  product in stock bumps only these, so anonymous and customer answers stay cached.

A write bumps at most a few tags per product it touches, never one per cached entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

CATALOG = "catalog"
LISTS = "lists"
STOCK = "stock"

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
    return Changes(
        session.info.pop(_TAGS, set()),
        session.info.pop(_EVENTS, []),
        session.info.pop(_PRINCIPALS, set()),
    )


def product_tag(product_id: int) -> str:
    return f"product:{product_id}"


def stock_tag(product_id: int) -> str:
    return f"stock:{product_id}"


def product_changed(session: AsyncSession, product_id: int) -> None:
    """Something everyone who may see the product can see changed (or it came or went)."""
    touch(session, LISTS, product_tag(product_id))


def stock_changed(session: AsyncSession, product_id: int, *, flipped: bool) -> None:
    """The product's ``stock`` moved; ``flipped`` when ``inStock`` changed with it."""
    touch(session, STOCK, stock_tag(product_id))
    if flipped:
        product_changed(session, product_id)


def category_changed(session: AsyncSession, category_id: int) -> None:
    """A category was created, renamed or deleted: product answers show categories."""
    touch(session, CATALOG)


def user_changed(session: AsyncSession, user_id: int, *, name: bool) -> None:
    """A user's role, flags or credentials changed; ``name`` when the name shown on
    their reviews did."""
    if name:
        touch(session, CATALOG)
    principal_changed(session, f"user:{user_id}")  # its role or active flag may have
