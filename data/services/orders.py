"""Reading orders: a customer's own, or all of them for staff and ``orders:read`` keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.batching import in_key_order
from data.errors import FieldError, Forbidden, Invalid, NotFound
from data.inputs import storable_ids, storable_int
from data.models import ORDER_STATUSES, Order, OrderItem
from data.pagination import Page, PageRequest, paginate, paginate_per_parent, sort_set
from data.policy import order_visible
from data.services.guards import require_principal

ORDER_SORTS = sort_set(created_at=(Order.created_at, Order.id))
DEFAULT_ORDER_SORT = "-created_at"


def _check_reader(actor: Actor) -> None:
    require_principal(actor)
    if actor.api_key_id is not None and not actor.has_scope("orders:read"):
        raise Forbidden("This API key lacks the orders:read scope.")


def _check_status(status: str | None) -> None:
    if status is not None and status not in ORDER_STATUSES:
        raise Invalid(
            "Unknown order status.",
            errors=[FieldError(("status",), f"one of {list(ORDER_STATUSES)}")],
        )


def _visible_orders(actor: Actor, status: str | None) -> Select[Order]:
    stmt = select(Order).where(order_visible(actor))
    return stmt.where(Order.status == status) if status is not None else stmt


async def list_orders(
    session: AsyncSession, actor: Actor, *, status: str | None = None, page: PageRequest
) -> Page[Order]:
    """A page of the orders this actor may see, newest first."""
    _check_reader(actor)
    _check_status(status)
    return await paginate(
        session,
        _visible_orders(actor, status),
        scope="orders",
        sort=ORDER_SORTS[DEFAULT_ORDER_SORT],
        request=page,
    )


async def count_orders(session: AsyncSession, actor: Actor, *, status: str | None = None) -> int:
    """How many orders this actor may see."""
    _check_reader(actor)
    _check_status(status)
    stmt = _visible_orders(actor, status).subquery()
    return int(await session.scalar(select(func.count()).select_from(stmt)) or 0)


async def find_order(session: AsyncSession, actor: Actor, *, order_id: int) -> Order:
    """An order this actor may see; another customer's is ``NotFound``."""
    _check_reader(actor)
    order = (
        await session.scalar(_visible_orders(actor, None).where(Order.id == order_id))
        if storable_int(order_id)
        else None
    )
    if order is None:
        raise NotFound("No such order.")
    return order


async def find_order_to_follow(session: AsyncSession, actor: Actor, *, order_id: int) -> Order:
    """An order whose live events this actor may follow: its customer, staff, admin and
    ``orders:read`` keys. For everyone else (anonymous too) it does not exist: ``NotFound``.

    Unlike reading, nobody learns here that signing in or a scope would help: a stream
    is refused the same way whoever asks. A bad credential never gets this far (401).
    """
    order = (
        await session.scalar(_visible_orders(actor, None).where(Order.id == order_id))
        if storable_int(order_id)
        else None
    )
    if order is None:
        raise NotFound("No such order.")
    return order


async def load_orders(
    session: AsyncSession, actor: Actor, ids: Sequence[int]
) -> list[Order | None]:
    """Orders by id in key order; ``None`` for those that do not exist for this actor."""
    stmt = select(Order).where(order_visible(actor), Order.id.in_(storable_ids(ids)))
    return in_key_order((await session.scalars(stmt)).all(), ids)


async def load_order_items(
    session: AsyncSession, actor: Actor, order_ids: Sequence[int]
) -> list[list[OrderItem]]:
    """The items of each order this actor may see, in key order."""
    stmt = (
        select(OrderItem)
        .where(
            OrderItem.order_id.in_(
                select(Order.id).where(order_visible(actor), Order.id.in_(order_ids))
            )
        )
        .order_by(OrderItem.order_id, OrderItem.id)
    )
    grouped: dict[int, list[OrderItem]] = {i: [] for i in order_ids}
    for item in (await session.scalars(stmt)).all():
        grouped[item.order_id].append(item)
    return [grouped[i] for i in order_ids]


async def load_customer_order_pages(
    session: AsyncSession,
    actor: Actor,
    customer_ids: Sequence[int],
    *,
    page: PageRequest,
    status: str | None = None,
) -> list[Page[Order]]:
    """Each customer's orders that this actor may see (``User.orders``), in one statement."""
    _check_status(status)
    pages = await paginate_per_parent(
        session,
        _visible_orders(actor, status),
        model=Order,
        parent=Order.customer_id,
        parent_ids=customer_ids,
        scope="orders",
        sort=ORDER_SORTS[DEFAULT_ORDER_SORT],
        request=page,
    )
    return [pages[i] for i in customer_ids]


async def count_customer_orders(
    session: AsyncSession, actor: Actor, customer_ids: Sequence[int], *, status: str | None = None
) -> list[int]:
    """How many of each customer's orders this actor may see, in key order."""
    _check_status(status)
    inner = _visible_orders(actor, status).where(Order.customer_id.in_(customer_ids)).subquery()
    stmt = select(inner.c.customer_id, func.count()).group_by(inner.c.customer_id)
    counts: dict[int, int] = dict((await session.execute(stmt)).all())
    return [int(counts.get(i, 0)) for i in customer_ids]
