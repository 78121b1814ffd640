"""A small world of principals for access tests: one of each kind in the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from data.db import Database
from data.models import Base, Order, Product
from data.seed import DEMO_PASSWORD, seed
from tests.conftest import (
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    running_gateway,
)

PRINCIPALS = (
    "anonymous",
    "customer",
    "other_customer",
    "staff",
    "admin",
    "key_catalog_read",
    "key_orders_read",
    "key_catalog_write",
)


@dataclass
class World:
    gateway: Gateway
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    customer_order: int = 0
    other_order: int = 0
    inactive_product: int = 0
    active_product: int = 0


async def login(gateway: Gateway, email: str, password: str) -> dict[str, Any]:
    response = await gateway.client.post(
        "/api/v1/auth/token", data={"username": email, "password": password}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def build_world(gateway: Gateway) -> World:
    """Logs in the demo users, registers a second customer and makes one key per scope."""
    world = World(gateway)
    world.headers["anonymous"] = {}
    for name, email in (
        ("customer", "customer@example.com"),
        ("staff", "staff@example.com"),
        ("admin", "admin@example.com"),
    ):
        tokens = await login(gateway, email, DEMO_PASSWORD)
        world.headers[name] = {"Authorization": f"Bearer {tokens['access_token']}"}
        world.refresh_tokens[name] = tokens["refresh_token"]
    response = await gateway.client.post(
        "/api/v1/auth/register",
        json={"email": "other@example.com", "password": "other-password", "name": "Otto Other"},
    )
    assert response.status_code == 201, response.text
    tokens = await login(gateway, "other@example.com", "other-password")
    world.headers["other_customer"] = {"Authorization": f"Bearer {tokens['access_token']}"}
    for scope in ("catalog:read", "orders:read", "catalog:write"):
        response = await gateway.client.post(
            "/api/v1/api-keys",
            json={"name": scope, "scopes": [scope]},
            headers=world.headers["admin"],
        )
        assert response.status_code == 201, response.text
        world.headers["key_" + scope.replace(":", "_")] = {"X-API-Key": response.json()["key"]}
    for name in ("customer", "other_customer", "staff", "admin"):
        me = await gateway.client.get("/api/v1/users/me", headers=world.headers[name])
        world.user_ids[name] = me.json()["id"]

    db: Database = gateway.app.state.db
    async with db.write() as session:
        world.customer_order = await session.scalar(
            select(Order.id).where(Order.customer_id == world.user_ids["customer"]).limit(1)
        )
        other = Order(customer_id=world.user_ids["other_customer"], status="pending", total_cents=0)
        session.add(other)
        await session.flush()
        world.other_order = other.id
        world.inactive_product = await session.scalar(
            select(Product.id).where(Product.is_active.is_(False)).limit(1)
        )
        world.active_product = await session.scalar(
            select(Product.id).where(Product.is_active.is_(True)).limit(1)
        )
    assert world.customer_order
    assert world.inactive_product
    assert world.active_product
    return world


@pytest.fixture(scope="module")
async def world(
    backend: str, tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[World]:
    tmp = tmp_path_factory.mktemp(f"world-{backend}")
    url = await new_database_url(backend, tmp, pg_databases)
    db = Database.from_url(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.write() as session:
        await seed(session, scale=40, demo=True)
    await db.dispose()
    # Access tests walk paths deeper and wider than the default GraphQL limits allow
    # (tests/test_limits.py covers those): the world raises them.
    settings = make_settings(url, Path(tmp), graphql_max_depth=20, graphql_max_cost=10**9)
    async with running_gateway(settings, backend) as gateway:
        yield await build_world(gateway)
