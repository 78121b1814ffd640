"""Helpers for order tests: fresh products of a test's own, and reading rows back."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from data.changes import Changes
from data.db import Database
from data.models import Category, Order, OrderItem, Product
from resolvers.ids import to_global_id
from tests.principals import World


def db_of(world: World) -> Database:
    return world.gateway.app.state.db


async def new_product(
    world: World, *, stock: int = 10, price_cents: int = 1999, active: bool = True
) -> int:
    """A product no other test touches."""
    async with db_of(world).write() as session:
        category_id = await session.scalar(select(Category.id).order_by(Category.id).limit(1))
        product = Product(
            sku=f"T-{uuid.uuid4().hex[:12]}",
            name=f"Test {uuid.uuid4().hex[:6]}",
            description="",
            price_cents=price_cents,
            stock=stock,
            category_id=category_id,
            is_active=active,
        )
        session.add(product)
        await session.flush()
        return product.id


async def stock_of(world: World, product_id: int) -> int:
    async with db_of(world).read() as session:
        return int(await session.scalar(select(Product.stock).where(Product.id == product_id)))


async def orders_of(world: World, customer: str, key: str | None = None) -> list[Order]:
    stmt = select(Order).where(Order.customer_id == world.user_ids[customer])
    if key is not None:
        stmt = stmt.where(Order.idempotency_key == key)
    async with db_of(world).read() as session:
        return list((await session.scalars(stmt)).all())


async def item_count(world: World, order_id: int) -> int:
    async with db_of(world).read() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(OrderItem).where(OrderItem.order_id == order_id)
            )
        )


class Recorder:
    """Collects what each committed write announced (``db.on_commit``)."""

    def __init__(self, db: Database) -> None:
        self.changes: list[Changes] = []
        db.on_commit(self)

    async def __call__(self, changes: Changes) -> None:
        self.changes.append(changes)

    def events(self, order_id: int) -> list[Any]:
        return [e for c in self.changes for e in c.events if e.order_id == order_id]

    def tags(self) -> set[str]:
        return {t for c in self.changes for t in c.tags}


PLACE = """mutation($input: PlaceOrderInput!) { placeOrder(input: $input) {
  databaseId status total { amount currency }
  items { quantity unitPrice { amount } subtotal { amount } product { databaseId } } } }"""
CANCEL = "mutation($id: ID!) { cancelOrder(id: $id) { databaseId status } }"
SET_STATUS = """mutation($id: ID!, $status: String!) {
  updateOrderStatus(id: $id, status: $status) { databaseId status } }"""


async def place(
    world: World,
    interface: str,
    principal: str,
    items: list[dict[str, Any]],
    key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Places an order through one interface: (HTTP-like status, body or GraphQL data)."""
    headers = dict(world.headers[principal])
    if interface == "graphql":
        gql_items = [
            {
                "productId": to_global_id("Product", i["product_id"])
                if isinstance(i["product_id"], int)
                else i["product_id"],
                "quantity": i["quantity"],
            }
            for i in items
        ]
        body = await world.gateway.graphql(
            PLACE, {"input": {"items": gql_items, "idempotencyKey": key}}, headers=headers
        )
        if body.get("errors"):
            code = body["errors"][0]["extensions"]["code"]
            return {
                "CONFLICT": 409,
                "BAD_USER_INPUT": 422,
                "FORBIDDEN": 403,
                "UNAUTHENTICATED": 401,
                "NOT_FOUND": 404,
            }[code], body["errors"][0]
        return 201, body["data"]["placeOrder"]
    if key is not None:
        headers["Idempotency-Key"] = key
    version = interface.removeprefix("rest_")
    response = await world.gateway.client.post(
        f"/api/{version}/orders", json={"items": items}, headers=headers
    )
    return response.status_code, response.json()


def order_id_of(interface: str, body: dict[str, Any]) -> int:
    return body["databaseId"] if interface == "graphql" else body["id"]


def normal_order(interface: str, body: dict[str, Any]) -> tuple[Any, ...]:
    """An order answer as (status, total, [(product, quantity, unit price, subtotal)]),
    money as decimal strings, whichever interface gave it."""

    def amount(cents: int) -> str:
        return f"{Decimal(cents) / 100:.2f}"

    if interface == "rest_v1":
        assert body["currency"] == "USD"
        return (
            body["status"],
            amount(body["total_cents"]),
            [
                (
                    i["product"],
                    i["quantity"],
                    amount(i["unit_price_cents"]),
                    amount(i["subtotal_cents"]),
                )
                for i in body["items"]
            ],
        )
    if interface == "rest_v2":
        return (
            body["status"],
            body["total"]["amount"],
            [
                (i["product"], i["quantity"], i["unit_price"]["amount"], i["subtotal"]["amount"])
                for i in body["items"]
            ],
        )
    return (
        body["status"],
        body["total"]["amount"],
        [
            (
                i["product"]["databaseId"],
                i["quantity"],
                i["unitPrice"]["amount"],
                i["subtotal"]["amount"],
            )
            for i in body["items"]
        ],
    )
