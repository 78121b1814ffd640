"""What the real writes publish, heard on the app's bus (in process, or through Redis).

Every write goes through the API. "Nothing was published" is proven without waiting for
silence: after the write that must publish nothing, a real change follows, and the next
event a subscriber hears is that change. Events of one bus arrive in publishing order
(in process at once; through Redis on one channel), so a stray event would come first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select

from data.changes import OrderEvent
from data.events import Subscription
from data.models import Order
from tests.event_world import INTERFACES, change_status, move, place_order
from tests.event_world import events as events  # the fixture
from tests.orderkit import db_of, new_product, order_id_of, place
from tests.principals import World

TIMEOUT = 10.0
# Ids a placement may take: the sequence can be ahead of max(id) by rolled-back inserts.
WINDOW = 50


async def next_event(subscription: Subscription) -> OrderEvent:
    return await asyncio.wait_for(anext(subscription), TIMEOUT)


async def next_change(subscription: Subscription) -> OrderEvent:
    """The next status change, past the order's own placement event: that one is
    published after its commit and, through Redis, may reach a subscription opened just
    after the placement answered."""
    event = await next_event(subscription)
    if (event.previous_status, event.status) == (None, "pending"):
        event = await next_event(subscription)
    return event


async def assert_quiet(subscription: Subscription) -> None:
    """Nothing more is queued (call once a later event has been heard elsewhere)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(subscription), 0.2)


@asynccontextmanager
async def following_next_orders(world: World) -> AsyncIterator[dict[str, Subscription]]:
    """Subscriptions, on the app's bus, to the ids the next orders will take."""
    async with db_of(world).read() as session:
        last = int(await session.scalar(select(func.max(Order.id))) or 0)
    bus = world.gateway.app.state.events
    subscriptions = {i: bus.subscribe(i) for i in range(last + 1, last + 1 + WINDOW)}
    try:
        yield subscriptions
    finally:
        for subscription in subscriptions.values():
            subscription.close()


@pytest.mark.parametrize("interface", INTERFACES)
async def test_placing_an_order_publishes_it_as_pending(events: World, interface: str) -> None:
    product = await new_product(events)
    async with following_next_orders(events) as following:
        status, body = await place(
            events, interface, "customer", [{"product_id": product, "quantity": 2}]
        )
        assert status == 201, body
        order_id = order_id_of(interface, body)
        placed = await next_event(following[order_id])
        assert (placed.order_id, placed.customer_id) == (order_id, events.user_ids["customer"])
        assert (placed.previous_status, placed.status) == (None, "pending")
        # Exactly one: the next event is the next change.
        paid = await change_status(events, order_id, via=interface)
        event = await next_event(following[order_id])
        assert (event.previous_status, event.status, event.at) == ("pending", "paid", paid.at)


@pytest.mark.parametrize("interface", INTERFACES)
async def test_an_idempotent_replay_publishes_nothing(events: World, interface: str) -> None:
    product = await new_product(events)
    items = [{"product_id": product, "quantity": 1}]
    key = f"replay-{interface}"
    async with following_next_orders(events) as following:
        status, first = await place(events, interface, "customer", items, key=key)
        assert status == 201, first
        order_id = order_id_of(interface, first)
        subscription = following[order_id]
        assert (await next_event(subscription)).status == "pending"
        for _ in range(2):
            status, again = await place(events, interface, "customer", items, key=key)
            assert (status, order_id_of(interface, again)) == (201, order_id)
        await change_status(events, order_id, via=interface)
        event = await next_event(subscription)
        assert (event.previous_status, event.status) == ("pending", "paid")


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_refused_change_publishes_nothing(events: World, interface: str) -> None:
    order_id = await place_order(events)
    async with events.gateway.app.state.events.subscribe(order_id) as subscription:
        for refused in ("delivered", "shipped", "pending"):  # not from pending
            code, error = await move(events, order_id, refused, via=interface)
            assert code == 409, error
        await change_status(events, order_id, "cancelled", via=interface)
        for refused in ("cancelled", "paid"):  # nothing leaves cancelled
            code, error = await move(events, order_id, refused, via=interface)
            assert code == 409, error
        event = await next_change(subscription)
        assert (event.previous_status, event.status) == ("pending", "cancelled")
        # A later order's change, heard on the bus, comes after anything for this one.
        later = await place_order(events)
        async with events.gateway.app.state.events.subscribe(later) as sentinel:
            await change_status(events, later, via=interface)
            assert (await next_change(sentinel)).status == "paid"
        await assert_quiet(subscription)


@pytest.mark.parametrize("interface", INTERFACES)
async def test_five_concurrent_cancels_publish_one_event(events: World, interface: str) -> None:
    order_id = await place_order(events, quantity=3)
    bus = events.gateway.app.state.events
    async with bus.subscribe(order_id) as subscription:
        answers = await asyncio.gather(
            *(move(events, order_id, "cancelled", via=interface) for _ in range(5))
        )
        assert sorted(code for code, _ in answers) == [200, 409, 409, 409, 409], answers
        event = await next_change(subscription)
        assert (event.order_id, event.previous_status, event.status) == (
            order_id,
            "pending",
            "cancelled",
        )
        # Every cancel has answered, so each publish is done; a change published after
        # them, once heard, proves no second cancel event is on its way.
        later = await place_order(events)
        async with bus.subscribe(later) as sentinel:
            await change_status(events, later, via=interface)
            assert (await next_change(sentinel)).status == "paid"
        await assert_quiet(subscription)
