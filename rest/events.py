"""Live order events as server-sent events: ``GET /orders/{id}/events``.

Each change is one SSE message::

    id: 42:paid
    event: order.updated
    data: {"order_id": 42, "status": "paid", "previous_status": "pending", "at": "…"}

The stream opens with ``retry:`` advice (how long a client waits before it reconnects),
and a comment line (``: heartbeat``) keeps idle connections open through proxies. The
``id`` is the order and its new status (a status is entered at most once), so a client
can recognise an event it has already seen after reconnecting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import StreamingResponse

from data.changes import OrderEvent
from data.events import EventBus, Subscription
from data.money import as_utc
from data.services import orders
from rest.deps import ActorDep, DbDep
from rest.openapi import problems

EVENT_NAME = "order.updated"
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}


def sse_message(event: OrderEvent) -> bytes:
    data = orjson.dumps({"order_id": event.order_id, "status": event.status,
                         "previous_status": event.previous_status, "at": as_utc(event.at)})
    return (f"id: {event.order_id}:{event.status}\nevent: {EVENT_NAME}\n".encode()
            + b"data: " + data + b"\n\n")


async def sse_stream(subscription: Subscription, *, heartbeat: float,
                     retry_ms: int) -> AsyncIterator[bytes]:
    """The stream's bytes; the subscription is closed however it ends (disconnects too)."""
    try:
        yield f"retry: {retry_ms}\n\n".encode()
        while True:
            try:
                event = await asyncio.wait_for(anext(subscription), heartbeat)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            except StopAsyncIteration:
                return  # shutdown, or this client fell behind: it reconnects
            yield sse_message(event)
    finally:
        subscription.close()


def events_router() -> APIRouter:
    """The event stream route (the same in every API version)."""
    router = APIRouter(tags=["orders"])

    @router.get(
        "/orders/{order_id}/events",
        response_class=StreamingResponse,
        responses={
            200: {"description": f"`text/event-stream` of `{EVENT_NAME}` events.",
                  "content": {"text/event-stream": {}}},
            **problems(404),
        },
    )
    async def order_events(
        request: Request, order_id: int, db: DbDep, actor: ActorDep
    ) -> StreamingResponse:
        """Stream the order's status changes as server-sent events."""
        bus: EventBus = request.app.state.events
        # Subscribe first, so a change committed while we check is not missed.
        subscription = bus.subscribe(order_id)
        try:
            # Its own short session: an open stream must not hold a pooled connection.
            async with db.read() as session:
                await orders.find_order_to_follow(session, actor, order_id=order_id)
        except BaseException:
            subscription.close()
            raise
        options: Any = request.app.state.settings
        return StreamingResponse(
            sse_stream(subscription, heartbeat=options.events_heartbeat_seconds,
                       retry_ms=options.events_retry_ms),
            media_type="text/event-stream", headers=STREAM_HEADERS,
        )

    return router
