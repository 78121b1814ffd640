"""Live order events as server-sent events: ``GET /orders/{id}/events``.

Each change is one SSE message::

    id: 42:paid
    event: order.updated
    data: {"order_id": 42, "status": "paid", "previous_status": "pending", "at": "…"}

The stream opens with ``retry:`` advice (how long a client waits before it reconnects),
and a comment line (``: heartbeat``) keeps idle connections open through proxies. The
``id`` is the order and its new status (a status is entered at most once), so a client
can recognise an event it has already seen after reconnecting.

A browser's ``EventSource`` cannot send an ``Authorization`` header, so this route (and
only this one) also takes the access token as the ``access_token`` query parameter
(RFC 6750, section 2.3): the same short-lived JWT, checked the same way. Sending it both
ways at once is refused, as a bearer token and an API key together are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import StreamingResponse

from data.actor import Actor
from data.changes import OrderEvent
from data.errors import Unauthenticated
from data.events import EventBus, Subscription
from data.money import as_utc
from data.services import auth, orders
from rest.deps import DbDep, TokensDep, get_actor
from rest.openapi import problems

EVENT_NAME = "order.updated"
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and similar proxies buffer responses unless told not to.
    "X-Accel-Buffering": "no",
}


def sse_message(event: OrderEvent) -> bytes:
    data = orjson.dumps(
        {
            "order_id": event.order_id,
            "status": event.status,
            "previous_status": event.previous_status,
            "at": as_utc(event.at),
        }
    )
    return (
        f"id: {event.order_id}:{event.status}\nevent: {EVENT_NAME}\n".encode()
        + b"data: "
        + data
        + b"\n\n"
    )


async def sse_stream(
    subscription: Subscription, *, heartbeat: float, retry_ms: int
) -> AsyncIterator[bytes]:
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


async def stream_actor(
    request: Request,
    db: DbDep,
    tokens: TokensDep,
    access_token: Annotated[
        str | None,
        Query(
            description="The access token, for clients that cannot send an `Authorization` "
            "header (a browser's `EventSource`); never together with one."
        ),
    ] = None,
) -> Actor:
    """The caller: from the headers, as everywhere, or from ``access_token``."""
    if access_token is None:
        return await get_actor(request)
    if "authorization" in request.headers or "x-api-key" in request.headers:
        raise Unauthenticated("Send the token once: in a header or as access_token.")
    actor = await auth.resolve_credentials(
        db, tokens, f"Bearer {access_token}", None, request.app.state.principals
    )
    request.state.actor = actor  # the access line names who follows, as for a header
    return actor


router = APIRouter(tags=["orders"])
"""The event stream route: the same in every API version, so one router serves both."""


@router.get(
    "/orders/{order_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": f"`text/event-stream` of `{EVENT_NAME}` events.",
            "content": {"text/event-stream": {}},
        },
        **problems(404),
    },
)
async def order_events(
    request: Request,
    order_id: int,
    db: DbDep,
    actor: Annotated[Actor, Depends(stream_actor)],
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
        sse_stream(
            subscription,
            heartbeat=options.events_heartbeat_seconds,
            retry_ms=options.events_retry_ms,
        ),
        media_type="text/event-stream",
        headers=STREAM_HEADERS,
    )
