"""Faults with real processes: a private PostgreSQL cluster stopped, frozen and
restarted under a real gateway server and concurrent load. What a user sees: 503
``UNAVAILABLE`` with ``Retry-After`` during an outage (never a 500), recovery within
seconds after it, no acknowledged write missing, and readiness within its timeout."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from data.db import Database
from data.migrate import upgrade_async
from data.models import Order
from data.seed import DEMO_PASSWORD, seed
from tests.private_postgres import PrivatePostgres
from tests.serving import Served, serving

HEALTH_TIMEOUT = 2.0
SETTINGS = {
    "HEALTH_TIMEOUT_SECONDS": str(HEALTH_TIMEOUT),
    "REQUEST_TIMEOUT_SECONDS": "6",
    "DB_CONNECT_TIMEOUT_SECONDS": "2",
    "DB_COMMAND_TIMEOUT_SECONDS": "3",
    "DB_POOL_SIZE": "4",
    "DB_POOL_TIMEOUT": "3",
    "CACHE_ENABLED": "false",
}


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    postgres = PrivatePostgres()
    postgres.start()
    try:
        asyncio.run(_prepare(postgres.url))
        yield postgres
    finally:
        postgres.close()


async def _prepare(url: str) -> None:
    await upgrade_async(url)
    db = Database.from_url(url)
    try:
        async with db.write() as session:
            await seed(session, scale=20, demo=True)
    finally:
        await db.dispose()


async def _acknowledged_orders_exist(url: str, ids: list[int]) -> set[int]:
    db = Database.from_url(url)
    try:
        async with db.read() as session:
            return set((await session.scalars(select(Order.id).where(Order.id.in_(ids)))).all())
    finally:
        await db.dispose()


@pytest.fixture
def server(cluster: PrivatePostgres, tmp_path: Path) -> Iterator[Served]:
    with serving(["serve"], tmp_path, {"DATABASE_URL": cluster.url, **SETTINGS}) as served:
        yield served


class Load:
    """Readers and order-placing writers, recording every answer."""

    def __init__(self, served: Served, token: str) -> None:
        self.served = served
        self.headers = {"Authorization": f"Bearer {token}"}
        self.answers: list[tuple[str, int, dict[str, Any], dict[str, str]]] = []
        self.acknowledged: list[int] = []
        self.running = True

    async def reader(self, client: httpx.AsyncClient, path: str) -> None:
        while self.running:
            self._note(path, await client.get(path))
            await asyncio.sleep(0.05)

    async def writer(self, client: httpx.AsyncClient) -> None:
        while self.running:
            key = uuid.uuid4().hex
            body = {"items": [{"product_id": 1, "quantity": 1}]}
            for _ in range(20):  # retried with the same key until answered for sure
                response = await client.post(
                    "/api/v1/orders", json=body, headers={**self.headers, "Idempotency-Key": key}
                )
                self._note("POST /orders", response)
                if response.status_code == 201:
                    self.acknowledged.append(response.json()["id"])
                    break
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.05)

    async def graphql(self, client: httpx.AsyncClient) -> None:
        while self.running:
            self._note(
                "graphql",
                await client.post(
                    "/graphql", json={"query": "{ products(first: 3) { edges { node { name } } } }"}
                ),
            )
            await asyncio.sleep(0.05)

    def _note(self, what: str, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.text[:200]}
        self.answers.append((what, response.status_code, body, dict(response.headers)))


async def _login(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/v1/auth/token", data={"username": "customer@example.com", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def assert_honest(load: Load, served: Served) -> list[int]:
    """Every answer is a success or a 503 UNAVAILABLE with Retry-After; the statuses."""
    statuses = []
    for what, status, body, headers in load.answers:
        statuses.append(status)
        assert status < 500 or status == 503, (what, status, body)
        if status == 503:
            assert int(headers["retry-after"]) >= 1
            code = body["errors"][0]["extensions"]["code"] if "errors" in body else body["code"]
            assert code == "UNAVAILABLE", (what, body)
    log = served.output()
    assert "Traceback" not in log
    assert "unhandled_exception" not in log
    return statuses


async def _until_ready(client: httpx.AsyncClient, seconds: float) -> float:
    loop = asyncio.get_running_loop()
    began = loop.time()
    while loop.time() - began < seconds:
        try:
            if (await client.get("/api/v1/products/1")).status_code == 200:
                return loop.time() - began
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"not serving again {seconds}s after the database came back")


async def test_database_lost_and_back_under_load(cluster: PrivatePostgres, server: Served) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        load = Load(server, await _login(client))
        tasks = [
            asyncio.create_task(job)
            for job in (
                load.reader(client, "/api/v1/products"),
                load.reader(client, "/api/v2/products/1"),
                load.graphql(client),
                *(load.writer(client) for _ in range(4)),
            )
        ]
        await asyncio.sleep(1.0)
        cluster.stop()
        await asyncio.sleep(3.0)
        async with httpx.AsyncClient(base_url=server.url, timeout=HEALTH_TIMEOUT + 1) as probe:
            ready = await probe.get("/health/ready")
            assert (ready.status_code, ready.json()["failed"]) == (503, ["database"])
        cluster.start()
        await _until_ready(client, 15)
        await asyncio.sleep(1.0)
        load.running = False
        await asyncio.gather(*tasks)
    statuses = assert_honest(load, server)
    assert 503 in statuses
    assert statuses[-1] != 503
    assert server.output().count("database_unavailable") <= 2  # once per worker's outage
    assert "database_available" in server.output()
    assert load.acknowledged
    found = await _acknowledged_orders_exist(cluster.url, load.acknowledged)
    assert found == set(load.acknowledged)  # no acknowledged write missing


async def test_database_frozen_is_503_within_the_time_limit(
    cluster: PrivatePostgres, server: Served
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        load = Load(server, await _login(client))
        tasks = [
            asyncio.create_task(job)
            for job in (
                load.reader(client, "/api/v1/products"),
                load.graphql(client),
                load.writer(client),
                load.writer(client),
            )
        ]
        await asyncio.sleep(1.0)
        cluster.freeze()
        try:
            # Readiness answers within its timeout (an overrunning check is abandoned).
            async with httpx.AsyncClient(
                base_url=server.url, timeout=HEALTH_TIMEOUT + 1.5
            ) as probe:
                for _ in range(3):
                    ready = await probe.get("/health/ready")
                    assert ready.status_code == 503
                    assert ready.json()["failed"] == ["database"]
                    assert (await probe.get("/health/live")).status_code == 200
            # A request is answered 503 within the time limit (6 s here), never 504.
            async with httpx.AsyncClient(base_url=server.url, timeout=8) as user:
                frozen = await user.get("/api/v1/products", params={"limit": 7})
                assert frozen.status_code == 503, frozen.text
                assert frozen.json()["code"] == "UNAVAILABLE"
            await asyncio.sleep(2.0)
        finally:
            cluster.thaw()
        await _until_ready(client, 15)
        load.running = False
        await asyncio.gather(*tasks)
    assert_honest(load, server)
    found = await _acknowledged_orders_exist(cluster.url, load.acknowledged)
    assert found == set(load.acknowledged)
