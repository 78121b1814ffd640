"""Under abuse: a login flood does not stall other requests (argon2 runs off the event
loop), and an abusive client is limited while a normal one keeps being answered, on a
real two-worker server sharing its limits through Redis. Bounded in requests and time."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest

from data.seed import DEMO_PASSWORD
from tests.conftest import RATE_LIMIT_PREFIX, REDIS_URL, make_settings, running_gateway
from tests.serving import serving
from tests.test_rate_limits import _redis_reachable, database_url  # noqa: F401 (fixture)

FLOOD = 40


async def test_a_login_flood_does_not_slow_other_requests(
    database_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = make_settings(
        database_url, tmp_path, auth_rate_limit_per_minute=1, auth_rate_limit_burst=12
    )
    async with running_gateway(settings, "sqlite") as gw:
        flooder = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gw.app, client=("10.6.6.6", 1)),
            base_url="http://testserver",
        )
        assert (await gw.client.get("/api/v1/products/1")).status_code == 200  # warm

        async def wrong_login(n: int) -> int:
            response = await flooder.post(
                "/api/v1/auth/token",
                data={"username": f"flood-{n}@example.com", "password": "wrong-password"},
            )
            return response.status_code

        async def timed_reads(flood: asyncio.Task[list[int]]) -> list[float]:
            latencies = []
            await asyncio.sleep(0.05)  # let the flood start hashing first
            while not flood.done() and len(latencies) < 20:
                begin = time.perf_counter()
                response = await gw.client.get("/api/v1/products/1")
                latencies.append(time.perf_counter() - begin)
                assert response.status_code == 200
                await asyncio.sleep(0.05)
            return latencies

        begin = time.perf_counter()
        async with flooder:
            flood = asyncio.ensure_future(asyncio.gather(*(wrong_login(n) for n in range(FLOOD))))
            latencies = await timed_reads(flood)
            statuses = await flood
        flood_seconds = time.perf_counter() - begin

    assert statuses.count(429) == FLOOD - 12  # the auth policy refuses the rest at once
    assert statuses.count(401) == 12  # each of these checked a password (~0.1-0.4 s of CPU)
    assert len(latencies) >= 2, f"the flood ended in {flood_seconds:.2f}s"
    # Were argon2 on the event loop, a read would wait out most of the flood.
    assert max(latencies) < min(1.0, flood_seconds / 2), (latencies, flood_seconds)


def test_an_abusive_client_is_limited_while_others_are_answered(tmp_path: Path) -> None:
    if not asyncio.run(_redis_reachable()):
        if os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    prefix = f"{RATE_LIMIT_PREFIX}load-{uuid.uuid4().hex[:8]}:"
    env = {
        "REDIS_URL": REDIS_URL,
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "RATE_LIMIT_PER_MINUTE": "60",
        "RATE_LIMIT_BURST": "50",
    }
    try:
        with serving(["serve", "--workers", "2"], tmp_path, env) as served:
            asyncio.run(_load(served.url))
    finally:
        asyncio.run(_delete_keys(prefix))


async def _load(url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=url, timeout=30) as normal,
        httpx.AsyncClient(
            base_url=url, timeout=30, limits=httpx.Limits(max_connections=8)
        ) as abusive,
    ):
        token = (
            await normal.post(
                "/api/v1/auth/token",
                data={"username": "customer@example.com", "password": DEMO_PASSWORD},
            )
        ).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        async def abuse() -> list[int]:
            statuses: list[int] = []
            for _ in range(10):  # 10 waves of 20 anonymous catalog reads
                wave = await asyncio.gather(*(abusive.get("/api/v1/products/1") for _ in range(20)))
                statuses += [r.status_code for r in wave]
            return statuses

        async def behave() -> list[int]:
            statuses = []
            for _ in range(25):
                response = await normal.get("/api/v1/products/1", headers=headers)
                statuses.append(response.status_code)
                await asyncio.sleep(0.02)
            return statuses

        abused, behaved = await asyncio.gather(abuse(), behave())
    assert behaved == [200] * 25
    assert set(abused) == {200, 429}
    # One bucket of 50 shared by both workers (plus ~1 a second refilled), not 50 each.
    assert 50 <= abused.count(200) <= 50 + 30, abused.count(200)


async def _delete_keys(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
