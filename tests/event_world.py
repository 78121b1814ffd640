"""The world of live order events: a gateway with a short heartbeat, on each bus.

Every event a test waits for is made by a real write through the API: an order placed
with ``POST /orders`` (``place_order``), then moved by staff with ``PATCH /orders/{id}``
or ``updateOrderStatus``, or cancelled by its customer with ``POST /orders/{id}/cancel``
or ``cancelOrder`` (``change_status``). The status machine never goes back, so each test
places orders of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from data.db import Database
from data.models import Base
from data.seed import seed
from resolvers.ids import to_global_id
from tests.conftest import (
    REDIS_RUN_PREFIX,
    REDIS_URL,
    REQUIRE_SERVICES,
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    running_gateway,
)
from tests.orderkit import new_product
from tests.principals import World, build_world

REDIS_PREFIX = REDIS_RUN_PREFIX  # the session deletes its keys (tests.conftest)
# The next status along the machine; "delivered" and "cancelled" are where orders end.
NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}
INTERFACES = ("rest_v1", "rest_v2", "graphql")
GQL_ORDER = "databaseId status updatedAt"
SET_STATUS = f"""mutation($id: ID!, $status: String!) {{
  updateOrderStatus(id: $id, status: $status) {{ {GQL_ORDER} }} }}"""
CANCEL = f"mutation($id: ID!) {{ cancelOrder(id: $id) {{ {GQL_ORDER} }} }}"


async def require_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    finally:
        await client.aclose()


@pytest.fixture(scope="module", params=["local", "redis"])
async def events(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: PostgresDatabases,
) -> AsyncIterator[World]:
    """The world of principals on a gateway with a short heartbeat, on each bus."""
    bus = request.param
    if bus == "redis":
        await require_redis()
    tmp = tmp_path_factory.mktemp(f"events-{backend}-{bus}")
    url = await new_database_url(backend, tmp, pg_databases)
    db = Database.from_url(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.write() as session:
        await seed(session, scale=40, demo=True)
    await db.dispose()
    settings = make_settings(
        url,
        Path(tmp),
        events_heartbeat_seconds=0.3,
        events_queue_size=4,
        events_retry_ms=2500,
        redis_url=REDIS_URL if bus == "redis" else None,
        redis_prefix=f"{REDIS_PREFIX}-{backend}",
    )
    async with running_gateway(settings, backend) as gateway:
        yield await build_world(gateway)


@dataclass(frozen=True)
class Change:
    """A status change as the API answered it: what its event must say."""

    order_id: int
    status: str
    previous_status: str | None
    at: datetime  # the order's ``updated_at`` in the answer: the event's ``at``


async def place_order(
    world: World, principal: str = "customer", *, gateway: Gateway | None = None, quantity: int = 1
) -> int:
    """``POST /api/v1/orders`` as ``principal``, of a product of the test's own."""
    product = await new_product(world, stock=100)
    response = await (gateway or world.gateway).client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product, "quantity": quantity}]},
        headers=world.headers[principal],
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    return int(response.json()["id"])


async def current_status(world: World, order_id: int, gateway: Gateway | None = None) -> str:
    response = await (gateway or world.gateway).client.get(
        f"/api/v1/orders/{order_id}", headers=world.headers["staff"]
    )
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


GQL_STATUS = {
    "CONFLICT": 409,
    "BAD_USER_INPUT": 422,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
}


async def move(
    world: World,
    order_id: int,
    status: str,
    *,
    via: str = "rest_v1",
    gateway: Gateway | None = None,
) -> tuple[int, dict[str, Any]]:
    """Asks ``via`` to move the order: staff's status change, or (``cancelled``) its
    customer's cancel. Returns the HTTP status (GraphQL's error code as one) and the
    order as ``{id, status, updated_at}``, or the problem / GraphQL error."""
    gw = gateway or world.gateway
    cancel = status == "cancelled"
    headers = world.headers["customer" if cancel else "staff"]
    if via == "graphql":
        variables: dict[str, Any] = {"id": to_global_id("Order", order_id)}
        if not cancel:
            variables["status"] = status
        body = await gw.graphql(CANCEL if cancel else SET_STATUS, variables, headers=headers)
        if body.get("errors"):
            return GQL_STATUS[body["errors"][0]["extensions"]["code"]], body["errors"][0]
        order = body["data"]["cancelOrder" if cancel else "updateOrderStatus"]
        return 200, {
            "id": order["databaseId"],
            "status": order["status"],
            "updated_at": order["updatedAt"],
        }
    path = f"/api/{via.removeprefix('rest_')}/orders/{order_id}"
    response = await (
        gw.client.post(f"{path}/cancel", headers=headers)
        if cancel
        else gw.client.patch(path, json={"status": status}, headers=headers)
    )
    return response.status_code, response.json()


async def change_status(
    world: World,
    order_id: int,
    status: str | None = None,
    *,
    via: str = "rest_v1",
    gateway: Gateway | None = None,
) -> Change:
    """Moves an order on through ``via`` (``rest_v1``, ``rest_v2`` or ``graphql``): staff
    change its status (the next one unless ``status`` says); ``cancelled`` is its
    customer's cancel. Fails unless the API says it moved."""
    previous = await current_status(world, order_id, gateway)
    status = status or NEXT_STATUS[previous]
    code, order = await move(world, order_id, status, via=via, gateway=gateway)
    assert code == 200, order
    assert (order["id"], order["status"]) == (order_id, status), order
    return Change(order_id, status, previous, datetime.fromisoformat(order["updated_at"]))


async def wait_for(condition: Any, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def subscribers(world: World) -> int:
    return world.gateway.app.state.events.subscriber_count
