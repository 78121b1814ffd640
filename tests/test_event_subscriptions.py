"""``subscription { orderUpdated(id) }`` over graphql-transport-ws at /graphql."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from resolvers.ids import to_global_id
from tests.conftest import running_gateway
from tests.event_world import change_status, place_order, subscribers, wait_for
from tests.event_world import events as events  # the fixture
from tests.principals import World
from tests.streams import ConnectionClosed, WebSocket, open_sse, open_websocket

PROTOCOL = "graphql-transport-ws"
ORDER_UPDATED = """
subscription Watch($id: ID!) {
  orderUpdated(id: $id) { id databaseId status total { amount currency }
                          customer { name } items { quantity } }
}
"""


def credential(world: World, principal: str) -> dict[str, str]:
    """A principal's HTTP headers as a ``connection_init`` payload."""
    return dict(world.headers[principal])


@asynccontextmanager
async def connected(
    world: World, payload: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[WebSocket]:
    async with open_websocket(world.gateway.app, "/graphql", PROTOCOL, headers) as ws:
        await ws.send_json({"type": "connection_init", "payload": payload or {}})
        yield ws


async def subscribe(ws: WebSocket, order_id: int | str, op: str = "1") -> None:
    ident = order_id if isinstance(order_id, str) else to_global_id("Order", order_id)
    await ws.send_json(
        {
            "id": op,
            "type": "subscribe",
            "payload": {"query": ORDER_UPDATED, "variables": {"id": ident}},
        }
    )


async def next_payload(ws: WebSocket) -> dict[str, Any]:
    message = await ws.receive_json()
    assert message["type"] == "next", message
    return message["payload"]


@pytest.mark.parametrize("principal", ["customer", "staff", "admin", "key_orders_read"])
async def test_subscribers_get_the_order_at_each_change(events: World, principal: str) -> None:
    order_id = await place_order(events)
    async with connected(events, credential(events, principal)) as ws:
        assert (await ws.receive_json())["type"] == "connection_ack"
        await subscribe(ws, order_id)
        await wait_for(lambda: subscribers(events) == 1, "the subscription")
        # updateOrderStatus, then the customer's POST /orders/{id}/cancel.
        for status, via in ((None, "graphql"), ("cancelled", "rest_v2")):
            event = await change_status(events, order_id, status, via=via)
            payload = await next_payload(ws)
            assert "errors" not in payload, payload
            order = payload["data"]["orderUpdated"]
            assert order["databaseId"] == order_id
            assert order["id"] == to_global_id("Order", order_id)
            assert order["status"] == event.status
            assert order["total"]["currency"] == "USD"
            assert order["customer"]["name"]
            assert order["items"]
        await ws.send_json({"id": "1", "type": "complete"})
        await wait_for(lambda: subscribers(events) == 0, "the unsubscription")


@pytest.mark.parametrize(
    "principal", ["other_customer", "anonymous", "key_catalog_read", "key_catalog_write"]
)
async def test_an_order_you_may_not_follow_ends_with_not_found(
    events: World, principal: str
) -> None:
    async with connected(events, credential(events, principal)) as ws:
        assert (await ws.receive_json())["type"] == "connection_ack"
        await subscribe(ws, events.customer_order)
        payload = await next_payload(ws)
        assert payload["data"] is None
        assert [e["extensions"]["code"] for e in payload["errors"]] == ["NOT_FOUND"]
        assert await ws.receive_json() == {"id": "1", "type": "complete"}
        assert subscribers(events) == 0


async def test_a_missing_order_and_a_bad_id_are_errors(events: World) -> None:
    async with connected(events, credential(events, "admin")) as ws:
        assert (await ws.receive_json())["type"] == "connection_ack"
        await subscribe(ws, 999999, op="a")
        payload = await next_payload(ws)
        assert payload["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        await ws.receive_json()  # complete
        await subscribe(ws, to_global_id("Product", 1), op="b")
        payload = await next_payload(ws)
        assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert subscribers(events) == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic abc"},
        {"X-API-Key": "gw_nope_nope"},
        {"Authorization": 42},
    ],
)
async def test_a_bad_credential_closes_the_socket_4403(
    events: World, payload: dict[str, Any]
) -> None:
    async with connected(events, payload) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive_json()
        assert closed.value.code == 4403


async def test_both_credentials_at_once_are_refused(events: World) -> None:
    both = {**credential(events, "customer"), **credential(events, "key_orders_read")}
    async with connected(events, both) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive_json()
        assert closed.value.code == 4403


async def test_a_bad_handshake_header_without_a_payload_credential_is_refused(
    events: World,
) -> None:
    async with connected(events, {}, headers={"Authorization": "Bearer junk"}) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive_json()
        assert closed.value.code == 4403


async def test_payload_keys_are_case_insensitive(events: World) -> None:
    token = events.headers["customer"]["Authorization"]
    async with connected(events, {"authorization": token}) as ws:
        assert (await ws.receive_json())["type"] == "connection_ack"
        order_id = await place_order(events)
        await subscribe(ws, order_id)
        await wait_for(lambda: subscribers(events) == 1, "the subscription")
        event = await change_status(events, order_id, via="graphql")
        assert (await next_payload(ws))["data"]["orderUpdated"]["status"] == event.status


async def test_a_dropped_socket_is_unsubscribed(events: World) -> None:
    async with connected(events, credential(events, "staff")) as ws:
        assert (await ws.receive_json())["type"] == "connection_ack"
        await subscribe(ws, events.customer_order, op="x")
        await subscribe(ws, events.other_order, op="y")
        await wait_for(lambda: subscribers(events) == 2, "two subscriptions")
    await wait_for(lambda: subscribers(events) == 0, "the socket's subscriptions to end")


async def test_queries_still_work_over_http_after_the_change(events: World) -> None:
    """The context getter now takes any connection; plain HTTP GraphQL is unchanged."""
    body = await events.gateway.graphql(
        "query($id: ID!) { order(id: $id) { status } }",
        {"id": to_global_id("Order", events.customer_order)},
        headers=events.headers["customer"],
    )
    assert body["data"]["order"]["status"]


async def test_app_shutdown_completes_open_subscriptions_and_streams(
    events: World, tmp_path: Path
) -> None:
    """A second app on the same database: its shutdown ends what it has open, cleanly."""
    settings = events.gateway.app.state.settings.model_copy(update={"data_dir": tmp_path})
    stack = contextlib.AsyncExitStack()
    gateway = await stack.enter_async_context(running_gateway(settings, events.gateway.backend))
    bus = gateway.app.state.events
    order_id = events.customer_order
    async with (
        open_sse(
            gateway.app, f"/api/v1/orders/{order_id}/events", events.headers["customer"]
        ) as sse,
        open_websocket(gateway.app, "/graphql", PROTOCOL) as ws,
    ):
        await ws.send_json({"type": "connection_init", "payload": credential(events, "staff")})
        assert (await ws.receive_json())["type"] == "connection_ack"
        await subscribe(ws, order_id)
        assert await sse.next_message() == "retry: 2500"
        await wait_for(lambda: bus.subscriber_count == 2, "both subscriptions")
        await stack.aclose()  # the lifespan's shutdown
        assert await ws.receive_json() == {"id": "1", "type": "complete"}
        while (block := await sse.next_message()) is not None:
            assert block == ": heartbeat"
        assert sse.finished
        assert bus.subscriber_count == 0
