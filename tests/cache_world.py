"""Fixtures for the response cache: each test on both stores (in process and Redis).

The Redis store uses a key prefix of its own per test and deletes its keys at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from data.db import Database
from data.models import Base, Category, Product, Review
from data.seed import DEMO_PASSWORD, seed
from tests.conftest import (
    REDIS_URL,
    REQUIRE_SERVICES,
    RUN_ID,
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    running_gateway,
)
from tests.principals import login

STORES = ("memory", "redis")


@dataclass
class CacheSetup:
    store: str
    redis_url: str | None = None
    prefix: str = "gw:"


async def redis_reachable() -> bool:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


async def delete_prefix(prefix: str) -> int:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.delete(*keys)
        return len(keys)
    finally:
        await client.aclose()


@pytest.fixture(params=STORES)
async def cache_setup(request: pytest.FixtureRequest) -> AsyncIterator[CacheSetup]:
    if request.param == "memory":
        yield CacheSetup("memory")
        return
    if not await redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    prefix = f"gwtest:{RUN_ID}:{uuid.uuid4().hex[:8]}:"
    yield CacheSetup("redis", REDIS_URL, prefix)
    await delete_prefix(prefix)


@dataclass
class CacheWorld:
    gateway: Gateway
    url: str
    tmp: Path
    setup: CacheSetup
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    reviewed_product: int = 0  # an active product the customer has reviewed
    inactive_product: int = 0
    category: tuple[int, str] = (0, "")

    @property
    def client(self) -> httpx.AsyncClient:
        return self.gateway.client

    @property
    def db(self) -> Database:
        return self.gateway.app.state.db

    async def rest(self, path: str, who: str = "anonymous", **kwargs: Any) -> httpx.Response:
        headers = {**self.headers[who], **kwargs.pop("headers", {})}
        return await self.client.get(path, headers=headers, **kwargs)

    async def gql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        who: str = "anonymous",
        **body: Any,
    ) -> httpx.Response:
        payload: dict[str, Any] = {"query": query, **body}
        if variables is not None:
            payload["variables"] = variables
        response = await self.client.post("/graphql", json=payload, headers=self.headers[who])
        assert response.status_code == 200, response.text
        return response


def cache_settings(url: str, tmp: Path, setup: CacheSetup, **overrides: Any) -> Any:
    # A loaded CI machine can take longer than the production timeout to answer, and can
    # stall the event loop past the production trust window (2 s): the courier's check
    # then lapses and a read the test expects to HIT is an honest BYPASS. Tests that
    # want the window to lapse (Redis down) pass their own.
    values = {
        "redis_url": setup.redis_url,
        "cache_prefix": setup.prefix,
        "redis_timeout_seconds": 5.0,
        "cache_trust_seconds": 10.0,
        # A request that finds another computing its answer waits for it this long, then
        # computes it too; the tests that count one computation must not see a loaded
        # machine's slow first answer as a lost lock.
        "cache_lock_seconds": 30.0,
        "cache_lock_wait_seconds": 10.0,
        **overrides,
    }
    return make_settings(url, tmp, **values)


async def seeded_url(backend: str, tmp: Path, pg_databases: PostgresDatabases) -> str:
    url = await new_database_url(backend, tmp, pg_databases)
    db = Database.from_url(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.write() as session:
            await seed(session, scale=20, demo=True)
    finally:
        await db.dispose()
    return url


async def build_cache_world(gateway: Gateway, url: str, tmp: Path, setup: CacheSetup) -> CacheWorld:
    world = CacheWorld(gateway, url, tmp, setup)
    world.headers["anonymous"] = {}
    for name in ("customer", "staff", "admin"):
        tokens = await login(gateway, f"{name}@example.com", DEMO_PASSWORD)
        world.headers[name] = {"Authorization": f"Bearer {tokens['access_token']}"}
        me = await gateway.client.get("/api/v1/users/me", headers=world.headers[name])
        world.user_ids[name] = me.json()["id"]
    response = await gateway.client.post(
        "/api/v1/api-keys",
        json={"name": "reader", "scopes": ["catalog:read"]},
        headers=world.headers["admin"],
    )
    assert response.status_code == 201, response.text
    world.headers["key_catalog_read"] = {"X-API-Key": response.json()["key"]}
    customer = world.user_ids["customer"]
    async with world.db.write() as session:
        last = await session.get(Product, await session.scalar(select(func.max(Product.id))))
        assert last is not None
        last.is_active = False  # before any read: nothing cached can be stale
        world.inactive_product = last.id
        reviewed = await session.scalar(
            select(Review.product_id)
            .join(Product, Product.id == Review.product_id)
            .where(Review.author_id == customer, Product.is_active.is_(True))
            .limit(1)
        )
        if reviewed is None:
            reviewed = await session.scalar(
                select(Product.id)
                .where(
                    Product.is_active.is_(True),
                    ~Product.id.in_(select(Review.product_id).where(Review.author_id == customer)),
                )
                .order_by(Product.id)
                .limit(1)
            )
            session.add(
                Review(
                    product_id=reviewed,
                    author_id=customer,
                    rating=4,
                    title="Solid",
                    body="Does what it says.",
                )
            )
        world.reviewed_product = reviewed
        category = (
            await session.execute(select(Category.id, Category.slug).order_by(Category.id).limit(1))
        ).one()
        world.category = (category.id, category.slug)
    assert world.inactive_product
    assert world.reviewed_product
    return world


@pytest.fixture
async def cache_world(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases, cache_setup: CacheSetup
) -> AsyncIterator[CacheWorld]:
    """A gateway with the cache on (in process or Redis) over a database of its own."""
    url = await seeded_url(backend, tmp_path, pg_databases)
    async with running_gateway(cache_settings(url, tmp_path, cache_setup), backend) as gw:
        yield await build_cache_world(gw, url, tmp_path, cache_setup)
