"""Live order events as server-sent events, in REST v1 and v2, on both buses."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import running_gateway
from tests.event_world import change_status, place_order, subscribers, wait_for
from tests.event_world import events as events  # the fixture
from tests.principals import World
from tests.streams import open_sse

VERSIONS = ("v1", "v2")


# Server-sent events.


@pytest.mark.parametrize("version", VERSIONS)
async def test_sse_sends_each_change_as_an_event(events: World, version: str) -> None:
    order_id = await place_order(events)
    path = f"/api/{version}/orders/{order_id}/events"
    async with open_sse(events.gateway.app, path, events.headers["customer"]) as sse:
        assert sse.status == 200
        assert sse.headers["content-type"].startswith("text/event-stream")
        assert sse.headers["cache-control"] == "no-cache"
        assert sse.headers["x-request-id"]
        assert await sse.next_message() == "retry: 2500"
        # Staff's PATCH in this version, then the customer's cancelOrder.
        sent = [
            await change_status(events, order_id, via=f"rest_{version}"),
            await change_status(events, order_id, "cancelled", via="graphql"),
        ]
        assert [(c.previous_status, c.status) for c in sent] == [
            ("pending", "paid"),
            ("paid", "cancelled"),
        ]
        for event in sent:
            got = await sse.next_event()
            assert got is not None
            assert got["event"] == "order.updated"
            assert got["id"] == f"{order_id}:{event.status}"
            assert got["json"] == {
                "order_id": order_id,
                "status": event.status,
                "previous_status": event.previous_status,
                "at": got["json"]["at"],
            }
            assert datetime.fromisoformat(got["json"]["at"]) == event.at
    await wait_for(lambda: subscribers(events) == 0, "the stream to unsubscribe")


async def test_sse_streams_only_the_orders_own_events(events: World) -> None:
    order_id = await place_order(events)
    other = await place_order(events, "other_customer")
    path = f"/api/v1/orders/{order_id}/events"
    async with open_sse(events.gateway.app, path, events.headers["staff"]) as sse:
        await sse.next_message()  # retry: the subscription is in place
        await change_status(events, other)
        mine = await change_status(events, order_id)
        got = await sse.next_event()
        assert got is not None
        assert got["json"]["order_id"] == order_id
        assert got["json"]["status"] == mine.status


@pytest.mark.parametrize(
    ("principal", "status", "code"),
    [
        ("customer", 200, None),
        ("staff", 200, None),
        ("admin", 200, None),
        ("key_orders_read", 200, None),
        # Everyone else: the order does not exist for them, whoever they are.
        ("other_customer", 404, "NOT_FOUND"),
        ("anonymous", 404, "NOT_FOUND"),
        ("key_catalog_read", 404, "NOT_FOUND"),
        ("key_catalog_write", 404, "NOT_FOUND"),
    ],
)
async def test_who_may_open_the_stream(
    events: World, principal: str, status: int, code: str | None
) -> None:
    path = f"/api/v2/orders/{events.customer_order}/events"
    async with open_sse(events.gateway.app, path, events.headers[principal]) as sse:
        assert sse.status == status
        if code is None:
            assert await sse.next_message() == "retry: 2500"
            assert subscribers(events) == 1
        else:
            # Refused before the stream starts: a whole problem document, no stream.
            await wait_for(lambda: sse.finished, "the refusal to finish")
            assert sse.headers["content-type"] == "application/problem+json"
            assert b'"code":"' + code.encode() + b'"' in sse.body.replace(b" ", b"")
            assert subscribers(events) == 0
    await wait_for(lambda: subscribers(events) == 0, "the stream to unsubscribe")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-token"},
        {"X-API-Key": "gw_nope_nope"},
    ],
)
async def test_a_bad_credential_is_401_not_404(events: World, headers: dict[str, str]) -> None:
    """Identity errors are not "may not open": the caller learns its credential failed."""
    path = f"/api/v1/orders/{events.customer_order}/events"
    async with open_sse(events.gateway.app, path, headers) as sse:
        assert sse.status == 401
        await wait_for(lambda: sse.finished, "the refusal to finish")
        assert sse.headers["content-type"] == "application/problem+json"
        assert b'"code":"UNAUTHENTICATED"' in sse.body.replace(b" ", b"")
    assert subscribers(events) == 0


def bearer(events: World, principal: str) -> str:
    return events.headers[principal]["Authorization"].removeprefix("Bearer ")


@pytest.mark.parametrize(
    ("query_from", "headers_of", "status", "code"),
    [
        ("customer", "anonymous", 200, None),
        ("staff", "anonymous", 200, None),
        # The token is the caller's, checked as in a header: others' orders do not exist.
        ("other_customer", "anonymous", 404, "NOT_FOUND"),
        (None, "anonymous", 404, "NOT_FOUND"),
        ("not-a-token", "anonymous", 401, "UNAUTHENTICATED"),
        ("key_orders_read", "anonymous", 401, "UNAUTHENTICATED"),  # an access token, not a key
        # One credential a request (RFC 6750): a header and the parameter together are refused.
        ("customer", "customer", 401, "UNAUTHENTICATED"),
        ("customer", "key_orders_read", 401, "UNAUTHENTICATED"),
    ],
)
async def test_the_stream_takes_the_access_token_as_a_query_parameter(
    events: World, query_from: str | None, headers_of: str, status: int, code: str | None
) -> None:
    """What a browser's EventSource, which cannot send headers, can use."""
    if query_from is None:
        token = ""
    elif query_from in events.headers and query_from.startswith("key_"):
        token = events.headers[query_from]["X-API-Key"]
    elif query_from in events.headers:
        token = bearer(events, query_from)
    else:
        token = query_from
    order_id = await place_order(events)
    path = f"/api/v1/orders/{order_id}/events"
    if query_from is not None:
        path += f"?access_token={token}"
    async with open_sse(events.gateway.app, path, events.headers[headers_of]) as sse:
        assert sse.status == status
        if code is None:
            assert await sse.next_message() == "retry: 2500"
            changed = await change_status(events, order_id)
            got = await sse.next_event()
            assert got is not None
            assert (got["json"]["order_id"], got["json"]["status"]) == (order_id, changed.status)
        else:
            await wait_for(lambda: sse.finished, "the refusal to finish")
            assert sse.headers["content-type"] == "application/problem+json"
            assert b'"code":"' + code.encode() + b'"' in sse.body.replace(b" ", b"")
    await wait_for(lambda: subscribers(events) == 0, "the stream to unsubscribe")


async def test_a_missing_order_is_404_and_bad_ids_are_422(events: World) -> None:
    for path, status in (
        ("/api/v1/orders/999999/events", 404),
        ("/api/v1/orders/99999999999999999999/events", 404),
        ("/api/v1/orders/abc/events", 422),
    ):
        async with open_sse(events.gateway.app, path, events.headers["admin"]) as sse:
            assert sse.status == status, path
    assert subscribers(events) == 0


async def test_sse_sends_heartbeats_while_idle(events: World) -> None:
    path = f"/api/v1/orders/{events.customer_order}/events"
    async with open_sse(events.gateway.app, path, events.headers["customer"]) as sse:
        assert await sse.next_message() == "retry: 2500"
        assert await sse.next_message() == ": heartbeat"
        assert await sse.next_message() == ": heartbeat"


async def test_disconnected_clients_are_unsubscribed(events: World) -> None:
    order_id = await place_order(events)
    path = f"/api/v1/orders/{order_id}/events"
    app = events.gateway.app
    async with open_sse(app, path, events.headers["customer"]) as first:
        await first.next_message()
        async with open_sse(app, path, events.headers["staff"]) as second:
            await second.next_message()
            assert subscribers(events) == 2
        await wait_for(lambda: subscribers(events) == 1, "one stream to be left")
        # The one left still works.
        event = await change_status(events, order_id, via="rest_v2")
        got = await first.next_event()
        assert got is not None
        assert got["json"]["status"] == event.status
    await wait_for(lambda: subscribers(events) == 0, "no stream to be left")


async def test_a_stuck_client_does_not_hold_up_others(events: World, tmp_path: Path) -> None:
    """A client that reads nothing fills its bounded queue and is dropped.

    A gateway of its own on the same database holds one event per subscriber
    (``EVENTS_QUEUE_SIZE=1``), so one order's three real changes overflow it.
    """
    settings = events.gateway.app.state.settings.model_copy(
        update={"events_queue_size": 1, "data_dir": tmp_path}
    )
    async with running_gateway(settings, events.gateway.backend) as gateway:
        app = gateway.app
        bus = app.state.events
        order_id = await place_order(events, gateway=gateway)
        path = f"/api/v1/orders/{order_id}/events"
        stuck_released = asyncio.Event()
        started = asyncio.Event()

        async def stuck_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set()
            elif message.get("body", b"").startswith(b"retry"):
                return
            else:
                await stuck_released.wait()  # the network never takes this byte

        async def stuck_receive() -> dict[str, Any]:
            await stuck_released.wait()
            return {"type": "http.disconnect"}

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"testserver"),
                *((k.lower().encode(), v.encode()) for k, v in events.headers["customer"].items()),
            ],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        stuck = asyncio.create_task(app(scope, stuck_receive, stuck_send))
        try:
            await asyncio.wait_for(started.wait(), 10)
            async with open_sse(app, path, events.headers["staff"]) as fast:
                await fast.next_message()
                assert bus.subscriber_count == 2
                # pending -> paid -> shipped -> delivered; the fast client reads each.
                for via in ("rest_v1", "graphql", "rest_v2"):
                    event = await change_status(events, order_id, via=via, gateway=gateway)
                    got = await fast.next_event()
                    assert got is not None
                    assert got["json"]["status"] == event.status
                assert event.status == "delivered"
                # The stuck stream was ended; the fast one is still here.
                await wait_for(lambda: bus.subscriber_count == 1, "the stuck stream to be dropped")
        finally:
            stuck_released.set()
            await asyncio.wait_for(stuck, 10)
        assert bus.subscriber_count == 0
