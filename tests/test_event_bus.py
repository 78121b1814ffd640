"""The event bus itself, in process and through Redis: fan-out, bounds, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from data.changes import Changes, OrderEvent
from data.events import EventBus, LocalBus, RedisBus, create_bus, decode_event, encode_event
from tests.conftest import REDIS_URL
from tests.event_world import REDIS_PREFIX, require_redis

AT = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def event(order_id: int, status: str = "paid", previous: str | None = "pending") -> OrderEvent:
    return OrderEvent(order_id, 7, status, previous, AT)


@pytest.fixture(params=["local", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "redis":
        await require_redis()
    made = create_bus(
        REDIS_URL if request.param == "redis" else None, prefix=f"{REDIS_PREFIX}-bus", queue_size=3
    )
    assert isinstance(made, RedisBus if request.param == "redis" else LocalBus)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


async def take(subscription: AsyncIterator[OrderEvent], n: int) -> list[OrderEvent]:
    async def run() -> list[OrderEvent]:
        return [await anext(subscription) for _ in range(n)]

    return await asyncio.wait_for(run(), 10)


def test_events_survive_the_wire() -> None:
    for sent in (event(1), event(2, "pending", None)):
        assert decode_event(encode_event(sent)) == sent


async def test_each_subscriber_gets_its_orders_events_in_order(bus: EventBus) -> None:
    a1, a2, b = bus.subscribe(1), bus.subscribe(1), bus.subscribe(2)
    assert bus.subscriber_count == 3
    sent = [event(1, "paid"), event(2, "shipped"), event(1, "shipped", "paid")]
    for item in sent:
        await bus.publish(item)
    assert await take(a1, 2) == [sent[0], sent[2]]
    assert await take(a2, 2) == [sent[0], sent[2]]
    assert await take(b, 1) == [sent[1]]
    for sub in (a1, a2, b):
        sub.close()
    assert bus.subscriber_count == 0


async def test_commit_listener_publishes_only_order_events(bus: EventBus) -> None:
    sub = bus.subscribe(5)
    await bus.publish_changes(Changes(tags={"catalog"}, events=["not an order event"]))
    await bus.publish_changes(Changes(events=[event(5)]))
    assert await take(sub, 1) == [event(5)]


async def test_a_slow_subscriber_is_dropped_and_others_keep_everything(bus: EventBus) -> None:
    slow, fast = bus.subscribe(1), bus.subscribe(1)
    received: list[OrderEvent] = []

    async def read_fast() -> None:
        async for item in fast:
            received.append(item)
            if len(received) == 20:
                return

    reader = asyncio.create_task(read_fast())
    sent = [event(1, f"s{i}") for i in range(20)]
    for i, item in enumerate(sent):
        await bus.publish(item)
        # A reader that keeps up (Redis delivers in bursts: wait for it, within a bound).
        for _ in range(1000):
            if len(received) > i:
                break
            await asyncio.sleep(0.01)
    await asyncio.wait_for(reader, 10)
    assert received == sent
    # The slow one never read: its queue of 3 overflowed, so its stream ended.
    assert slow.lagged
    assert slow.ended
    assert [item async for item in slow] == []
    assert bus.subscriber_count == 1


async def test_ending_streams_ends_open_and_later_subscriptions(bus: EventBus) -> None:
    sub = bus.subscribe(1)
    waiting = asyncio.create_task(anext(sub, None))
    await asyncio.sleep(0.05)
    bus.end_streams()
    assert await asyncio.wait_for(waiting, 10) is None
    late = bus.subscribe(1)
    assert late.ended
    assert bus.subscriber_count == 0


async def test_redis_buses_with_other_prefixes_do_not_meet() -> None:
    await require_redis()
    ours = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-ours")
    theirs = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-theirs")
    for item in (ours, theirs):
        await item.start()
    try:
        mine = ours.subscribe(1)
        await theirs.publish(event(1, "shipped"))
        await ours.publish(event(1, "paid"))
        assert await take(mine, 1) == [event(1, "paid")]
    finally:
        for item in (ours, theirs):
            await item.close()


async def test_a_redis_bus_reaches_another_process_bus_and_skips_junk() -> None:
    await require_redis()
    listener = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-x")
    publisher = RedisBus(REDIS_URL, prefix=f"{REDIS_PREFIX}-x")
    await listener.start()
    try:
        sub = listener.subscribe(3)
        client = aioredis.from_url(REDIS_URL)
        try:
            await client.publish(listener.channel, b"{not json")
            await client.publish(listener.channel, b'{"order_id": 3}')
        finally:
            await client.aclose()
        await publisher.publish(event(3))
        assert await take(sub, 1) == [event(3)]
    finally:
        await listener.close()
        await publisher.close()


async def test_losing_the_redis_connection_ends_streams_and_listening_resumes() -> None:
    """Events published while a process is not listening are lost to it: its open streams
    end (their clients reconnect and re-read) rather than silently miss them."""
    await require_redis()
    prefix = f"{REDIS_PREFIX}-lost"
    bus = RedisBus(REDIS_URL, prefix=prefix)
    bus.RECONNECT_DELAY = 0.1
    await bus.start()
    admin = aioredis.from_url(REDIS_URL)
    try:
        before = bus.subscribe(1)
        clients = await admin.client_list()
        ours = [
            c for c in clients if c.get("name") == f"{prefix}:events" and "P" in c.get("flags", "")
        ]
        assert len(ours) == 1, clients
        await admin.client_kill_filter(_id=ours[0]["id"])
        assert await asyncio.wait_for(anext(before, None), 10) is None
        # Listening again (a new subscription hears the next event), within a bound.
        for _ in range(100):
            after = bus.subscribe(1)
            await bus.publish(event(1))
            try:
                assert await asyncio.wait_for(anext(after), 0.2) == event(1)
                break
            except TimeoutError:
                after.close()
        else:
            raise AssertionError("the bus did not listen again")
    finally:
        await admin.aclose()
        await bus.close()
