"""Placing orders and moving them through the status machine.

Placing an order runs a constant number of statements however many lines it has: the
order row first (so an idempotency key is claimed, and on SQLite the write lock taken,
before anything is read), one ``SELECT ... FOR UPDATE`` of all its products in id order
(so two orders never deadlock on PostgreSQL), one conditional set-based stock
``UPDATE``, one multi-row ``INSERT`` of the items and one ``UPDATE`` of the total.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.changes import OrderEvent, emit, stock_changed
from data.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from data.inputs import storable_int
from data.models import ORDER_STATUSES, Order, OrderItem, Product, utcnow
from data.money import as_utc
from data.policy import can_read_stock, order_visible
from data.services.guards import require_principal, require_user

MAX_LINES = 100
MAX_QUANTITY = 1000
MAX_KEY_LENGTH = 255

# Where each status may be reached from; "pending" is only ever the start.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "paid": ("pending",),
    "shipped": ("paid",),
    "delivered": ("shipped",),
    "cancelled": ("pending", "paid"),
}


@dataclass(frozen=True)
class OrderLine:
    product_id: Any
    quantity: Any


def _validate_lines(lines: Sequence[OrderLine]) -> None:
    errors: list[FieldError] = []
    if not lines:
        errors.append(FieldError(("items",), "an order needs at least one item"))
    if len(lines) > MAX_LINES:
        errors.append(FieldError(("items",), f"at most {MAX_LINES} items"))
    seen: set[int] = set()
    for i, line in enumerate(lines):
        if not storable_int(line.product_id) or line.product_id < 1:
            errors.append(FieldError(("items", i, "product_id"), "not a product id"))
        elif line.product_id in seen:
            errors.append(
                FieldError(
                    ("items", i, "product_id"), "the same product twice: give it once with the sum"
                )
            )
        else:
            seen.add(line.product_id)
        if not storable_int(line.quantity) or not 1 <= line.quantity <= MAX_QUANTITY:
            errors.append(
                FieldError(("items", i, "quantity"), f"an integer from 1 to {MAX_QUANTITY}")
            )
    if errors:
        raise InvalidInput("Invalid order items.", errors=errors)


def _validate_key(key: str | None) -> None:
    if key is None:
        return
    if not (1 <= len(key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in key)):
        raise InvalidInput(
            "Invalid idempotency key.",
            errors=[
                FieldError(
                    ("idempotency_key",), f"1 to {MAX_KEY_LENGTH} printable ASCII characters"
                )
            ],
        )


def _request_hash(lines: Sequence[OrderLine]) -> str:
    canonical = sorted((line.product_id, line.quantity) for line in lines)
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


def _require_customer_or_staff(actor: Actor) -> int:
    return require_user(actor)  # API keys are not users: they cannot own orders


async def _existing(session: AsyncSession, customer_id: int, key: str, digest: str) -> Order:
    order = await session.scalar(
        select(Order).where(Order.customer_id == customer_id, Order.idempotency_key == key)
    )
    if order is None:  # the winner rolled back since: the client may simply retry
        raise Conflict("A request with this idempotency key is in progress; retry.")
    if order.request_hash != digest:
        raise Conflict("This idempotency key was used with a different request.")
    return order


async def place_order(
    session: AsyncSession,
    actor: Actor,
    *,
    lines: Sequence[OrderLine],
    idempotency_key: str | None = None,
) -> tuple[Order, list[OrderItem]]:
    """Places an order for the signed-in user; a repeated idempotency key returns the
    order it first made."""
    customer_id = _require_customer_or_staff(actor)
    _validate_key(idempotency_key)
    _validate_lines(lines)
    digest = _request_hash(lines)

    # Insert, or read the winner: the unique (customer_id, idempotency_key) constraint
    # decides between concurrent copies. The order row is the transaction's first
    # statement, so rolling back on a duplicate loses nothing.
    now = utcnow()
    order = Order(
        customer_id=customer_id,
        status="pending",
        total_cents=0,
        idempotency_key=idempotency_key,
        request_hash=digest,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if idempotency_key is None:
            raise
        order = await _existing(session, customer_id, idempotency_key, digest)
        items = (
            await session.scalars(
                select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)
            )
        ).all()
        return order, list(items)

    ids = sorted(line.product_id for line in lines)
    found = {
        p.id: p
        for p in (
            await session.execute(
                select(
                    Product.id,
                    Product.sku,
                    Product.name,
                    Product.price_cents,
                    Product.stock,
                    Product.is_active,
                )
                .where(Product.id.in_(ids))
                .order_by(Product.id)
                .with_for_update()
            )
        ).all()
    }
    missing = [
        FieldError(
            ("items", i, "product_id"),
            f"product {line.product_id} does not exist or is not for sale",
        )
        for i, line in enumerate(lines)
        if line.product_id not in found or not found[line.product_id].is_active
    ]
    if missing:
        raise InvalidInput("Some items name no product for sale.", errors=missing)
    short = [line for line in lines if found[line.product_id].stock < line.quantity]
    if short:
        raise Conflict(_shortage(actor, short, found))

    quantity = case({line.product_id: line.quantity for line in lines}, value=Product.id)
    taken = (
        (
            await session.execute(
                update(Product)
                .where(Product.id.in_(ids), Product.stock >= quantity)
                .values(stock=Product.stock - quantity)
                .returning(Product.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    if len(taken) != len(ids):  # the rows are locked, so only a bug gets here
        raise Conflict(_shortage(actor, [li for li in lines if li.product_id not in taken], found))

    # One multi-row VALUES statement (executemany would be a statement per line on SQLite).
    inserted = {
        item.product_id: item
        for item in (
            await session.scalars(
                insert(OrderItem)
                .values(
                    [
                        {
                            "order_id": order.id,
                            "product_id": line.product_id,
                            "quantity": line.quantity,
                            "unit_price_cents": found[line.product_id].price_cents,
                        }
                        for line in lines
                    ]
                )
                .returning(OrderItem)
            )
        ).all()
    }
    items = [inserted[line.product_id] for line in lines]
    order.total_cents = sum(item.subtotal_cents for item in items)
    order.updated_at = now  # a new order was not updated (onupdate would stamp it later)
    await session.flush()

    for line in lines:  # inStock flips only for the last item(s) taken
        stock_changed(
            session, line.product_id, flipped=found[line.product_id].stock == line.quantity
        )
    emit(session, OrderEvent(order.id, customer_id, "pending", None, as_utc(now)))
    return order, items


def _shortage(actor: Actor, lines: Sequence[OrderLine], found: dict[int, Any]) -> str:
    """The refusal's text: how many are left only for those who may read ``stock``
    (the count is exactly the field a customer is refused elsewhere)."""
    tell = can_read_stock(actor)
    names = ", ".join(
        f"{found[li.product_id].name} (sku {found[li.product_id].sku}, "
        f"product {li.product_id}" + (f": {found[li.product_id].stock} left)" if tell else ")")
        for li in lines
    )
    return f"Not enough stock for: {names}."


async def _visible_order(session: AsyncSession, actor: Actor, order_id: int) -> Order:
    order = (
        await session.scalar(select(Order).where(order_visible(actor), Order.id == order_id))
        if storable_int(order_id)
        else None
    )
    if order is None:
        raise NotFound("No such order.")
    return order


async def _move(session: AsyncSession, actor: Actor, order_id: int, status: str) -> Order:
    """The conditional status change: one row moves, or none (then NotFound or Conflict)."""
    now = utcnow()
    for previous in TRANSITIONS.get(status, ()):
        moved = (
            await session.scalars(
                update(Order)
                .where(Order.id == order_id, Order.status == previous, order_visible(actor))
                .values(status=status, updated_at=now)
                .returning(Order)
                .execution_options(synchronize_session=False, populate_existing=True)
            )
        ).one_or_none()
        if moved is not None:
            if status == "cancelled":
                await _restock(session, moved.id)
            emit(session, OrderEvent(moved.id, moved.customer_id, status, previous, as_utc(now)))
            return moved
    current = await _visible_order(session, actor, order_id)
    raise Conflict(f"An order cannot move from {current.status} to {status}.")


async def _restock(session: AsyncSession, order_id: int) -> None:
    """Puts a cancelled order's items back on the shelf (locks in id order, like placing)."""
    lines = select(OrderItem.product_id).where(OrderItem.order_id == order_id)
    before = {
        row.id: row.stock
        for row in (
            await session.execute(
                select(Product.id, Product.stock)
                .where(Product.id.in_(lines))
                .order_by(Product.id)
                .with_for_update()
            )
        ).all()
    }
    returned = (
        select(func.sum(OrderItem.quantity))
        .where(OrderItem.order_id == order_id, OrderItem.product_id == Product.id)
        .scalar_subquery()
    )
    restocked = (
        (
            await session.execute(
                update(Product)
                .where(Product.id.in_(lines))
                .values(stock=Product.stock + returned)
                .returning(Product.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    for product_id in restocked:
        stock_changed(session, product_id, flipped=before[product_id] == 0)


async def cancel_order(session: AsyncSession, actor: Actor, *, order_id: int) -> Order:
    """Cancels a pending or paid order (its customer, staff or admin); stock goes back."""
    _require_customer_or_staff(actor)
    if not storable_int(order_id):
        raise NotFound("No such order.")
    return await _move(session, actor, order_id, "cancelled")


async def update_order_status(
    session: AsyncSession, actor: Actor, *, order_id: int, status: str
) -> Order:
    """Moves an order along the status machine (staff and admin)."""
    require_principal(actor)
    if actor.api_key_id is not None:
        raise Forbidden("API keys cannot change orders.")
    if not actor.is_staff:
        await _visible_order(session, actor, order_id)  # another customer's: NotFound
        raise Forbidden("Only staff and admins change an order's status; you may cancel it.")
    if status not in ORDER_STATUSES:
        raise InvalidInput(
            "Unknown order status.",
            errors=[FieldError(("status",), f"one of {', '.join(ORDER_STATUSES)}")],
        )
    if not storable_int(order_id):
        raise NotFound("No such order.")
    return await _move(session, actor, order_id, status)


async def load_items(session: AsyncSession, order: Order) -> list[OrderItem]:
    """An order's items, for answering a write (the caller already may see the order)."""
    return list(
        (
            await session.scalars(
                select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)
            )
        ).all()
    )
