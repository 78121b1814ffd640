"""Placing orders: prices, stock, validation and idempotency, in every interface."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from data.models import Order, OrderItem
from tests.orderkit import (
    Recorder,
    db_of,
    item_count,
    new_product,
    normal_order,
    order_id_of,
    orders_of,
    place,
    stock_of,
)
from tests.principals import World

INTERFACES = ("rest_v1", "rest_v2", "graphql")


@pytest.mark.parametrize("interface", INTERFACES)
async def test_an_order_takes_prices_from_the_catalog_and_stock_from_the_shelf(
    world: World, interface: str
) -> None:
    a = await new_product(world, stock=5, price_cents=1999)
    b = await new_product(world, stock=2, price_cents=250)
    recorder = Recorder(db_of(world))
    status, body = await place(
        world,
        interface,
        "customer",
        [{"product_id": a, "quantity": 2}, {"product_id": b, "quantity": 2}],
    )
    assert status == 201, body
    assert body["status"] == "pending"
    if interface == "rest_v1":
        assert body["total_cents"] == 2 * 1999 + 2 * 250
        assert [
            (i["product"], i["unit_price_cents"], i["subtotal_cents"]) for i in body["items"]
        ] == [(a, 1999, 3998), (b, 250, 500)]
        assert body["customer"] == world.user_ids["customer"]
    elif interface == "rest_v2":
        assert body["total"] == {"amount": "44.98", "currency": "USD"}
        assert [
            (i["product"], i["unit_price"]["amount"], i["subtotal"]["amount"])
            for i in body["items"]
        ] == [(a, "19.99", "39.98"), (b, "2.50", "5.00")]
    else:
        assert body["total"] == {"amount": "44.98", "currency": "USD"}
        assert [
            (i["product"]["databaseId"], i["unitPrice"]["amount"], i["subtotal"]["amount"])
            for i in body["items"]
        ] == [(a, "19.99", "39.98"), (b, "2.50", "5.00")]
    assert (await stock_of(world, a), await stock_of(world, b)) == (3, 0)
    order_id = order_id_of(interface, body)
    [event] = recorder.events(order_id)
    assert (event.status, event.previous_status, event.customer_id) == (
        "pending",
        None,
        world.user_ids["customer"],
    )
    # a keeps stock (only stock readers see a change); b's last items went: inStock flipped.
    assert recorder.tags() == {"stock", f"stock:{a}", f"stock:{b}", f"product:{b}", "lists"}


@pytest.mark.parametrize("field", ["unit_price_cents", "total_cents", "status", "customer_id"])
async def test_the_server_owns_prices_status_and_customer(world: World, field: str) -> None:
    product = await new_product(world, stock=5)
    client = world.gateway.client
    for body in (
        {"items": [{"product_id": product, "quantity": 1}], field: 1},
        {"items": [{"product_id": product, "quantity": 1, field: 1}]},
    ):
        response = await client.post("/api/v1/orders", json=body, headers=world.headers["customer"])
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "BAD_USER_INPUT"
    assert await stock_of(world, product) == 5


BAD_QUANTITIES = [0, -1, 1001, 1.5, "1", True, None, 2**40]


@pytest.mark.parametrize("quantity", BAD_QUANTITIES)
async def test_bad_quantities_point_at_the_item(world: World, quantity: object) -> None:
    good, other, bad = (
        await new_product(world),
        await new_product(world),
        await new_product(world),
    )
    items = [
        {"product_id": good, "quantity": 1},
        {"product_id": other, "quantity": 1},
        {"product_id": bad, "quantity": quantity},
    ]
    response = await world.gateway.client.post(
        "/api/v1/orders", json={"items": items}, headers=world.headers["customer"]
    )
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "BAD_USER_INPUT"
    assert ["body", "items", 2, "quantity"] in [e["loc"] for e in problem["errors"]]
    assert await stock_of(world, good) == 10


@pytest.mark.parametrize("quantity", [0, -1, 1001])
async def test_bad_quantities_in_graphql_point_at_the_item(world: World, quantity: int) -> None:
    good, bad = await new_product(world), await new_product(world)
    status, error = await place(
        world,
        "graphql",
        "customer",
        [{"product_id": good, "quantity": 1}, {"product_id": bad, "quantity": quantity}],
    )
    assert status == 422
    assert ["input", "items", 1, "quantity"] in [e["loc"] for e in error["extensions"]["errors"]]


@pytest.mark.parametrize("quantity", [1.5, "1", True, None])
async def test_graphql_refuses_non_integer_quantities(world: World, quantity: object) -> None:
    product = await new_product(world)
    status, _ = await place(
        world, "graphql", "customer", [{"product_id": product, "quantity": quantity}]
    )
    assert status == 422
    assert await stock_of(world, product) == 10


@pytest.mark.parametrize("interface", INTERFACES)
async def test_empty_duplicate_and_too_many_lines_are_refused(world: World, interface: str) -> None:
    product = await new_product(world)
    status, _ = await place(world, interface, "customer", [])
    assert status == 422
    status, body = await place(
        world,
        interface,
        "customer",
        [{"product_id": product, "quantity": 1}, {"product_id": product, "quantity": 2}],
    )
    assert status == 422
    locs = [
        e["loc"]
        for e in (body["extensions"]["errors"] if interface == "graphql" else body["errors"])
    ]
    assert locs == (
        [["input", "items", 1, "productId"]]
        if interface == "graphql"
        else [["body", "items", 1, "product_id"]]
    )
    lines = [{"product_id": product + i, "quantity": 1} for i in range(101)]
    status, _ = await place(world, interface, "customer", lines)
    assert status == 422
    assert await stock_of(world, product) == 10


@pytest.mark.parametrize("interface", INTERFACES)
async def test_unknown_and_inactive_products_are_named(world: World, interface: str) -> None:
    good = await new_product(world)
    hidden = await new_product(world, active=False)
    for principal in ("customer", "staff"):
        status, body = await place(
            world,
            interface,
            principal,
            [
                {"product_id": good, "quantity": 1},
                {"product_id": hidden, "quantity": 1},
                {"product_id": 999_999, "quantity": 1},
            ],
        )
        assert status == 422
        errors = body["extensions"]["errors"] if interface == "graphql" else body["errors"]
        assert [e["loc"][2] for e in errors] == [1, 2]
        assert str(hidden) in errors[0]["msg"]
    assert await stock_of(world, good) == 10


@pytest.mark.parametrize("interface", INTERFACES)
async def test_short_stock_is_a_conflict_that_names_the_product(
    world: World, interface: str
) -> None:
    plenty, scarce = await new_product(world, stock=10), await new_product(world, stock=1)
    status, body = await place(
        world,
        interface,
        "customer",
        [{"product_id": plenty, "quantity": 3}, {"product_id": scarce, "quantity": 2}],
    )
    assert status == 409
    detail = body["message"] if interface == "graphql" else body["detail"]
    assert f"product {scarce}" in detail
    assert f"product {plenty}" not in detail
    assert (await stock_of(world, plenty), await stock_of(world, scarce)) == (10, 1)


@pytest.mark.parametrize("interface", INTERFACES)
async def test_a_refusal_tells_how_many_are_left_only_to_who_may_read_stock(
    world: World, interface: str
) -> None:
    scarce = await new_product(world, stock=7)
    texts = {}
    for principal in ("customer", "staff"):
        status, body = await place(
            world, interface, principal, [{"product_id": scarce, "quantity": 8}]
        )
        assert status == 409
        texts[principal] = body["message"] if interface == "graphql" else body["detail"]
    assert f"product {scarce}" in texts["customer"]
    assert "7" not in texts["customer"].split(f"product {scarce}")[1]
    assert "left" not in texts["customer"]
    assert f"product {scarce}: 7 left" in texts["staff"]
    assert await stock_of(world, scarce) == 7


async def test_api_keys_cannot_place_orders(world: World) -> None:
    product = await new_product(world)
    for principal in ("key_catalog_read", "key_orders_read", "key_catalog_write"):
        for interface in INTERFACES:
            status, _ = await place(
                world, interface, principal, [{"product_id": product, "quantity": 1}]
            )
            assert status == 403
    status, _ = await place(world, "rest_v1", "anonymous", [{"product_id": product, "quantity": 1}])
    assert status == 401
    assert await stock_of(world, product) == 10


@pytest.mark.parametrize("interface", INTERFACES)
async def test_concurrent_orders_never_oversell(world: World, interface: str) -> None:
    product = await new_product(world, stock=3)
    results = await asyncio.gather(
        *(
            place(world, interface, "customer", [{"product_id": product, "quantity": 1}])
            for _ in range(24)
        )
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 3 + [409] * 21, results
    assert await stock_of(world, product) == 0


@pytest.mark.parametrize("interface", INTERFACES)
async def test_idempotent_retries_make_one_order(world: World, interface: str) -> None:
    product = await new_product(world, stock=10)
    key = f"retry-{interface}-{product}"
    items = [{"product_id": product, "quantity": 2}]
    results = await asyncio.gather(
        *(place(world, interface, "customer", items, key) for _ in range(10))
    )
    assert [status for status, _ in results] == [201] * 10, results
    assert len({order_id_of(interface, body) for _, body in results}) == 1
    assert await stock_of(world, product) == 8
    [order] = await orders_of(world, "customer", key)
    assert await item_count(world, order.id) == 1
    # And later, one by one: the same answer again.
    status, body = await place(world, interface, "customer", items, key)
    assert (status, order_id_of(interface, body)) == (201, order.id)
    assert await stock_of(world, product) == 8


async def test_a_key_is_one_request_across_interfaces_and_per_principal(world: World) -> None:
    product = await new_product(world, stock=10)
    key = f"shared-{product}"
    items = [{"product_id": product, "quantity": 1}]
    ids = set()
    for interface in INTERFACES:
        status, body = await place(world, interface, "customer", items, key)
        assert status == 201
        ids.add(order_id_of(interface, body))
    assert len(ids) == 1
    status, body = await place(
        world, "rest_v1", "customer", [{"product_id": product, "quantity": 2}], key
    )
    assert status == 409
    assert "different request" in body["detail"]
    status, body = await place(world, "rest_v1", "other_customer", items, key)
    assert status == 201
    assert body["id"] not in ids
    assert await stock_of(world, product) == 8


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "ünïcode"])
async def test_bad_idempotency_keys_are_refused(world: World, key: str) -> None:
    product = await new_product(world)
    headers = {**world.headers["customer"], "Idempotency-Key": key.encode()}
    response = await world.gateway.client.post(
        "/api/v1/orders", json={"items": [{"product_id": product, "quantity": 1}]}, headers=headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    status, error = await place(
        world, "graphql", "customer", [{"product_id": product, "quantity": 1}], key
    )
    assert status == 422
    assert error["extensions"]["errors"][0]["loc"] == ["input", "idempotencyKey"]
    assert await stock_of(world, product) == 10


async def test_staff_and_admin_order_for_themselves(world: World) -> None:
    product = await new_product(world)
    for principal in ("staff", "admin"):
        status, body = await place(
            world, "rest_v2", principal, [{"product_id": product, "quantity": 1}]
        )
        assert status == 201
        assert body["customer"] == world.user_ids[principal]
    async with db_of(world).read() as session:
        assert (await session.get(Order, body["id"])) is not None


async def test_an_order_leaves_the_same_rows_and_answers_through_every_interface(
    world: World,
) -> None:
    a = await new_product(world, stock=9, price_cents=1999)
    b = await new_product(world, stock=9, price_cents=5)
    hidden = await new_product(world, active=False)
    shapes = []
    for interface in INTERFACES:
        status, body = await place(
            world,
            interface,
            "customer",
            [{"product_id": b, "quantity": 3}, {"product_id": a, "quantity": 1}],
        )
        async with db_of(world).read() as session:
            order = await session.get(Order, order_id_of(interface, body))
            assert order is not None
            items = (
                await session.scalars(
                    select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)
                )
            ).all()
        short, _ = await place(world, interface, "customer", [{"product_id": a, "quantity": 50}])
        bad, error = await place(
            world,
            interface,
            "customer",
            [{"product_id": a, "quantity": 1}, {"product_id": hidden, "quantity": 1}],
        )
        locs = error["extensions"]["errors"] if interface == "graphql" else error["errors"]
        shapes.append(
            (
                status,
                normal_order(interface, body),
                (
                    order.customer_id,
                    order.status,
                    order.total_cents,
                    [(i.product_id, i.quantity, i.unit_price_cents) for i in items],
                ),
                short,
                bad,
                [loc["loc"][:3][1:] for loc in locs],  # the line, in either naming
            )
        )
    assert shapes[0] == shapes[1] == shapes[2]
    assert shapes[0][2] == (world.user_ids["customer"], "pending", 2014, [(b, 3, 5), (a, 1, 1999)])
    assert (await stock_of(world, a), await stock_of(world, b)) == (6, 0)
