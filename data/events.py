"""Live order events: a bus that carries ``OrderEvent``s from commits to subscribers.

``publish(event)`` hands an event to every subscriber of its order, in this process
(``LocalBus``, the embedded default) or in every process sharing one Redis
(``RedisBus``: one pub/sub connection per process listens, and fans out locally).

A subscriber holds a bounded queue. Publishing never waits for it: a subscriber whose
queue is full has fallen behind, so its stream ends (``lagged``) and its client, told to
retry, reconnects and reads the order afresh. Memory stays bounded and others never
wait. ``close()`` ends every stream, so nothing holds the process open at shutdown.

The bus also carries revocations of remembered principals (``data.principals``): a write
that ends a login, deactivates a user or revokes a key is forgotten in this process at
once and in every other one as the message arrives; a process whose bus is not
listening trusts no remembered principal until it listens again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from types import TracebackType
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog

from data.changes import Changes, OrderEvent
from data.principals import PrincipalCache

log = structlog.get_logger("gateway.events")

DEFAULT_QUEUE_SIZE = 64


class Subscription:
    """One subscriber's stream of the events of one order (an async iterator)."""

    def __init__(self, bus: EventBus, order_id: int, limit: int) -> None:
        self.order_id = order_id
        self.lagged = False
        self._bus = bus
        self._limit = limit
        self._items: deque[OrderEvent] = deque()
        self._wake = asyncio.Event()
        self._ended = False

    def offer(self, event: OrderEvent) -> None:
        """Queues ``event`` without waiting; a full queue ends this subscription."""
        if self._ended:
            return
        if len(self._items) >= self._limit:
            self.lagged = True
            log.warning("subscriber_lagged", order_id=self.order_id, queued=len(self._items))
            self.close()
            return
        self._items.append(event)
        self._wake.set()

    def close(self) -> None:
        """Ends the stream and unsubscribes (idempotent)."""
        if not self._ended:
            self._ended = True
            self._items.clear()
            self._bus._remove(self)
        self._wake.set()

    @property
    def ended(self) -> bool:
        return self._ended

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> OrderEvent:
        while True:
            if self._ended:
                raise StopAsyncIteration
            if self._items:
                return self._items.popleft()
            self._wake.clear()
            await self._wake.wait()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EventBus:
    """Local fan-out shared by both buses; subclasses decide how events arrive."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[int, set[Subscription]] = {}
        self._closed = False
        self.principals = PrincipalCache(enabled=False)

    def remember_principals(self, principals: PrincipalCache) -> None:
        """Keeps ``principals`` told of every revocation, in this process and others."""
        self.principals = principals

    @property
    def subscriber_count(self) -> int:
        """How many streams are open in this process."""
        return sum(len(subs) for subs in self._subscribers.values())

    def subscribe(self, order_id: int) -> Subscription:
        """A stream of the events of ``order_id`` published from now on."""
        subscription = Subscription(self, order_id, self.queue_size)
        if self._closed:
            subscription.close()  # shutting down: the stream ends at once
        else:
            self._subscribers.setdefault(order_id, set()).add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        subs = self._subscribers.get(subscription.order_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subscribers[subscription.order_id]

    def _deliver(self, event: OrderEvent) -> None:
        # A copy: a lagging subscriber removes itself while we walk the set.
        for subscription in list(self._subscribers.get(event.order_id, ())):
            subscription.offer(event)

    async def publish(self, event: OrderEvent) -> None:
        """Hands ``event`` to every subscriber of its order (in every process sharing it)."""
        raise NotImplementedError

    async def publish_changes(self, changes: Changes) -> None:
        """A ``Database.on_commit`` listener: publishes the order events a write recorded
        and the principals it revoked (forgotten here before anything is sent)."""
        if changes.principals:
            self.principals.forget(changes.principals)
            await self.publish_revocations(changes.principals)
        for event in changes.events:
            if isinstance(event, OrderEvent):
                await self.publish(event)

    async def publish_revocations(self, keys: set[str]) -> None:
        """Tells every other process sharing the bus to forget these principals."""

    async def start(self) -> None:
        """Gets ready to receive events (a no-op in process)."""

    def end_streams(self) -> None:
        """Ends every open stream, and those opened later: the process is stopping."""
        self._closed = True
        self._drop_subscribers()

    def _drop_subscribers(self) -> None:
        for subs in list(self._subscribers.values()):
            for subscription in list(subs):
                subscription.close()

    async def close(self) -> None:
        """Ends every stream and releases what the bus holds."""
        self.end_streams()


class LocalBus(EventBus):
    """Subscribers in this process only: the embedded default (no ``REDIS_URL``)."""

    async def publish(self, event: OrderEvent) -> None:
        self._deliver(event)


def encode_event(event: OrderEvent) -> bytes:
    return orjson.dumps(
        {
            "order_id": event.order_id,
            "customer_id": event.customer_id,
            "status": event.status,
            "previous_status": event.previous_status,
            "at": event.at.isoformat(),
        }
    )


def decode_event(payload: bytes | str) -> OrderEvent:
    data: dict[str, Any] = orjson.loads(payload)
    return OrderEvent(
        order_id=int(data["order_id"]),
        customer_id=int(data["customer_id"]),
        status=str(data["status"]),
        previous_status=data["previous_status"],
        at=datetime.fromisoformat(data["at"]),
    )


class RedisBus(EventBus):
    """Events through Redis pub/sub, so every worker and instance sees every change.

    All order events share one channel, ``<prefix>:events:orders``: one SUBSCRIBE per
    process, made before the app serves, so a stream opened later misses nothing that
    is published after it opened. Each process filters by order locally.
    """

    RECONNECT_DELAY = 1.0

    def __init__(
        self,
        client: str | aioredis.Redis,
        *,
        prefix: str,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        start_timeout: float = 5.0,
    ) -> None:
        """``client``: a redis-py client for pub/sub (the bus owns it and closes it), or
        a URL to make one from."""
        super().__init__(queue_size=queue_size)
        self.channel = f"{prefix}:events:orders"
        self.revocations = f"{prefix}:events:principals"
        if isinstance(client, str):
            # Named, so an operator can tell these connections apart in CLIENT LIST.
            client = aioredis.from_url(
                client, socket_connect_timeout=start_timeout, client_name=f"{prefix}:events"
            )
        self._client = client
        self._start_timeout = start_timeout
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def publish(self, event: OrderEvent) -> None:
        # Bounded: the write has committed and its request waits for this.
        await asyncio.wait_for(
            self._client.publish(self.channel, encode_event(event)), self._start_timeout
        )

    async def publish_revocations(self, keys: set[str]) -> None:
        await asyncio.wait_for(
            self._client.publish(self.revocations, orjson.dumps(sorted(keys))), self._start_timeout
        )

    def remember_principals(self, principals: PrincipalCache) -> None:
        super().remember_principals(principals)
        if not self._listening.is_set():
            principals.distrust()  # until the subscription is confirmed

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="order-events-listener")
        try:
            await asyncio.wait_for(self._listening.wait(), self._start_timeout)
        except TimeoutError:
            # Readiness reports Redis down; the listener keeps trying meanwhile.
            log.error("event_bus_not_listening", channel=self.channel)

    async def _listen(self) -> None:
        while True:
            try:
                async with self._client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel, self.revocations)
                    confirmed = 0
                    async for message in pubsub.listen():
                        if message["type"] == "subscribe":
                            confirmed += 1
                            if confirmed == 2:
                                # Confirmed: from now on nothing published is missed.
                                self._listening.set()
                                self.principals.trust()
                        elif message["type"] == "message":
                            if message["channel"] in (self.revocations, self.revocations.encode()):
                                self._revoke(message["data"])
                            else:
                                self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event_bus_listener_failed", channel=self.channel)
                self.principals.distrust()
                if self._listening.is_set():
                    self._listening.clear()
                    # Events may be lost until we listen again: rather than let streams
                    # miss them silently, end them; clients reconnect and re-read.
                    self._drop_subscribers()
                await asyncio.sleep(self.RECONNECT_DELAY)

    def _revoke(self, payload: bytes) -> None:
        try:
            keys = {str(key) for key in orjson.loads(payload)}
        except (ValueError, TypeError):
            log.warning("event_bus_bad_message", channel=self.revocations)
            self.principals.clear()  # forget everything rather than guess
            return
        self.principals.forget(keys)

    def _receive(self, payload: bytes) -> None:
        try:
            event = decode_event(payload)
        except (ValueError, KeyError, TypeError):
            log.warning("event_bus_bad_message", channel=self.channel)
            return
        self._deliver(event)

    async def close(self) -> None:
        self.end_streams()
        self.principals.distrust()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()


def create_bus(
    redis: str | aioredis.Redis | None, *, prefix: str, queue_size: int = DEFAULT_QUEUE_SIZE
) -> EventBus:
    """A ``RedisBus`` over ``redis`` (a URL or a client) when given, else a ``LocalBus``."""
    if redis:
        return RedisBus(redis, prefix=prefix, queue_size=queue_size)
    return LocalBus(queue_size=queue_size)
