"""The order status machine, cancelling, and the statements an order costs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resolvers.ids import to_global_id
from tests.orderkit import CANCEL, SET_STATUS, Recorder, db_of, new_product, place, stock_of
from tests.principals import World

INTERFACES = ("rest_v1", "rest_v2", "graphql")
GQL_STATUS = {
    "CONFLICT": 409,
    "BAD_USER_INPUT": 422,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
}
ALLOWED = {
    ("pending", "paid"),
    ("paid", "shipped"),
    ("shipped", "delivered"),
    ("pending", "cancelled"),
    ("paid", "cancelled"),
}
STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
PATHS = {
    "pending": [],
    "paid": ["paid"],
    "shipped": ["paid", "shipped"],
    "delivered": ["paid", "shipped", "delivered"],
    "cancelled": ["cancelled"],
}


async def new_order(
    world: World, principal: str = "customer", quantity: int = 2, stock: int = 10
) -> tuple[int, int]:
    product = await new_product(world, stock=stock)
    status, body = await place(
        world, "rest_v1", principal, [{"product_id": product, "quantity": quantity}]
    )
    assert status == 201, body
    return body["id"], product


async def set_status(
    world: World, interface: str, principal: str, order_id: int, status: str
) -> tuple[int, Any]:
    headers = world.headers[principal]
    if interface == "graphql":
        body = await world.gateway.graphql(
            SET_STATUS, {"id": to_global_id("Order", order_id), "status": status}, headers=headers
        )
        if body.get("errors"):
            return GQL_STATUS[body["errors"][0]["extensions"]["code"]], body["errors"][0]
        return 200, body["data"]["updateOrderStatus"]
    response = await world.gateway.client.patch(
        f"/api/{interface.removeprefix('rest_')}/orders/{order_id}",
        json={"status": status},
        headers=headers,
    )
    return response.status_code, response.json()


async def cancel(world: World, interface: str, principal: str, order_id: int) -> int:
    headers = world.headers[principal]
    if interface == "graphql":
        body = await world.gateway.graphql(
            CANCEL, {"id": to_global_id("Order", order_id)}, headers=headers
        )
        if body.get("errors"):
            return GQL_STATUS[body["errors"][0]["extensions"]["code"]]
        assert body["data"]["cancelOrder"]["status"] == "cancelled"
        return 200
    response = await world.gateway.client.post(
        f"/api/{interface.removeprefix('rest_')}/orders/{order_id}/cancel", headers=headers
    )
    return response.status_code


@pytest.mark.parametrize("interface", INTERFACES)
async def test_the_status_machine_allows_exactly_its_moves(world: World, interface: str) -> None:
    for start in STATUSES:
        for target in STATUSES:
            order_id, product = await new_order(world)
            for step in PATHS[start]:
                assert (await set_status(world, "rest_v1", "staff", order_id, step))[0] == 200
            recorder = Recorder(db_of(world))
            status, body = await set_status(world, interface, "admin", order_id, target)
            expected = 200 if (start, target) in ALLOWED else 409
            assert status == expected, (start, target, body)
            if status == 200:
                assert body["status"] == target
                [event] = recorder.events(order_id)
                assert (event.previous_status, event.status) == (start, target)
            else:
                assert recorder.events(order_id) == []
            restocked = target == "cancelled" and status == 200 or start == "cancelled"
            assert await stock_of(world, product) == (10 if restocked else 8), (start, target)


@pytest.mark.parametrize("interface", INTERFACES)
async def test_customers_cancel_only_their_own_orders(world: World, interface: str) -> None:
    order_id, product = await new_order(world)
    assert await cancel(world, interface, "other_customer", order_id) == 404
    assert await cancel(world, interface, "key_orders_read", order_id) == 403
    assert await cancel(world, interface, "anonymous", order_id) == 401
    assert (await set_status(world, interface, "customer", order_id, "paid"))[0] == 403
    assert (await set_status(world, interface, "other_customer", order_id, "paid"))[0] == 404
    assert (await set_status(world, interface, "staff", order_id, "refunded"))[0] == 422
    assert (await set_status(world, interface, "staff", 999_999, "paid"))[0] == 404
    assert await stock_of(world, product) == 8
    assert await cancel(world, interface, "customer", order_id) == 200
    assert await stock_of(world, product) == 10
    assert await cancel(world, interface, "customer", order_id) == 409
    assert await stock_of(world, product) == 10
    staff_cancels, _ = await new_order(world)
    assert await cancel(world, interface, "staff", staff_cancels) == 200


@pytest.mark.parametrize("interface", INTERFACES)
async def test_concurrent_cancels_restock_once(world: World, interface: str) -> None:
    order_id, product = await new_order(world, quantity=3, stock=5)
    assert await stock_of(world, product) == 2
    recorder = Recorder(db_of(world))
    statuses = await asyncio.gather(
        *(cancel(world, interface, "customer", order_id) for _ in range(5))
    )
    assert sorted(statuses) == [200] + [409] * 4
    assert await stock_of(world, product) == 5
    assert [(e.previous_status, e.status) for e in recorder.events(order_id)] == [
        ("pending", "cancelled")
    ]
    # 2 back to 5: only what stock readers see changed (inStock stayed true).
    assert recorder.tags() == {"stock", f"stock:{product}"}


async def test_placing_an_order_costs_the_same_statements_for_1_or_10_lines(world: World) -> None:
    products = [await new_product(world, stock=50) for _ in range(10)]
    counts = []
    for n in (1, 10):
        with world.gateway.count_statements() as counter:
            status, _ = await place(
                world,
                "rest_v1",
                "customer",
                [{"product_id": p, "quantity": 1} for p in products[:n]],
            )
        assert status == 201
        counts.append(counter.count)
    assert counts[0] == counts[1], counts
    with world.gateway.count_statements() as counter:
        status, _ = await place(
            world, "graphql", "customer", [{"product_id": p, "quantity": 1} for p in products]
        )
    assert status == 201
    graphql_10 = counter.count
    with world.gateway.count_statements() as counter:
        status, _ = await place(
            world, "graphql", "customer", [{"product_id": products[0], "quantity": 1}]
        )
    assert counter.count == graphql_10
