"""The response cache when Redis fails, with real processes: a private ``redis-server``
the tests kill, restart empty, freeze and cut off from one instance, and two gateway
servers on one PostgreSQL database, read from both interfaces all the while.

Each test asserts what a user sees: no 2xx answer to a read sent after a staff price
change was acknowledged shows an older price, on either instance, in REST v1/v2 detail
and list or GraphQL ``product`` and ``products``; an instance that cannot reach Redis
never says ``HIT``; and the cache is back in use (``HIT`` with the newest price on every
instance and every kind of read) within seconds of Redis coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from data.seed import DEMO_PASSWORD
from tests.cache_world import seeded_url
from tests.conftest import PostgresDatabases
from tests.fault_world import (
    TIMEOUT,
    CuttableProxy,
    PrivateRedis,
    Read,
    Readers,
    Writes,
    private_redis,
    stale_reads,
    until,
)
from tests.serving import serving

# The slower of a frozen Redis's two costs here: one timed-out call, then the breaker.
FAST_FAILURE = {"REDIS_TIMEOUT_SECONDS": "0.5", "CACHE_REDIS_RETRY_SECONDS": "0.2"}


@dataclass
class Fleet:
    redis: PrivateRedis
    proxy: CuttableProxy  # instance "a" reaches Redis through it; "b" directly
    urls: dict[str, str]
    readers: Readers
    writes: Writes

    async def metrics(self, name: str) -> str:
        async with httpx.AsyncClient(base_url=self.urls[name], timeout=TIMEOUT) as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text

    async def recovered(self, since: float) -> bool:
        """Every instance has answered every kind of read from the cache with the newest
        price, asked after ``since``."""
        newest = self.writes.acked[-1][1]
        hits = {
            (r.instance, r.kind)
            for r in self.readers.reads
            if r.sent > since and r.x_cache == "HIT" and r.cents == newest
        }
        return hits >= {(name, kind) for name in self.urls for kind in Readers.KINDS}

    async def change_and_recover(self, via: str) -> None:
        await self.writes.change_price(self.urls[via])
        since = self.writes.acked[-1][0]
        await until(lambda: self.recovered(since), f"every read a HIT after a write via {via}")


def no_hit_between(reads: list[Read], start: float, end: float, instances: set[str]) -> list[Read]:
    """HITs sent after ``start`` and answered before ``end`` by these instances."""
    return [
        r
        for r in reads
        if r.instance in instances and r.sent > start and r.got < end and r.x_cache == "HIT"
    ]


@contextlib.asynccontextmanager
async def fleet(tmp_path: Path, pg_databases: PostgresDatabases) -> AsyncIterator[Fleet]:
    url = await seeded_url("postgresql", tmp_path, pg_databases)
    with private_redis(tmp_path) as redis:
        proxy = CuttableProxy(redis.port)
        await proxy.start()
        base = {"DATABASE_URL": url, "CACHE_PREFIX": "gw:", **FAST_FAILURE}
        with contextlib.ExitStack() as stack:
            # Started off the loop: the proxy lives in it and must keep pumping.
            a, b = await asyncio.gather(
                *(
                    asyncio.to_thread(
                        stack.enter_context,
                        serving(["serve"], tmp_path, {**base, "REDIS_URL": redis_url}),
                    )
                    for redis_url in (proxy.url, redis.url)
                )
            )
            urls = {"a": a.url, "b": b.url}
            async with httpx.AsyncClient(base_url=a.url, timeout=TIMEOUT) as client:
                token = (
                    await client.post(
                        "/api/v1/auth/token",
                        data={"username": "staff@example.com", "password": DEMO_PASSWORD},
                    )
                ).json()
                listing = await client.get("/api/v1/products?limit=1&sort=name")
            product = listing.json()["data"][0]
            readers = Readers(urls, product)
            world = Fleet(redis, proxy, urls, readers, Writes(token["access_token"], product))
            readers.start()
            try:
                yield world
            finally:
                await readers.stop()
                await proxy.close()
                await asyncio.to_thread(stack.close)
            assert stale_reads(readers.reads, world.writes.acked) == []
            kinds = {r.x_cache for r in readers.reads}
            assert kinds <= {"HIT", "MISS", "BYPASS"}, kinds
            assert all(r.status == 200 for r in readers.reads), sorted(
                {(r.instance, r.kind, r.status) for r in readers.reads if r.status != 200}
            )


def metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


async def test_two_instances_on_one_redis_see_each_others_writes(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    async with fleet(tmp_path, pg_databases) as world:
        for via in ("a", "b", "b", "a"):
            await world.change_and_recover(via)
        assert stale_reads(world.readers.reads, world.writes.acked) == []


async def test_redis_lost_and_back_empty_never_brings_old_prices_back(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    async with fleet(tmp_path, pg_databases) as world:
        # One write: tag versions, and every instance's local copies, are at the stamp a
        # Redis counting from scratch would reach again after one write.
        await world.change_and_recover("a")
        world.readers.idle = {"a", "b"}  # nobody reads while Redis restarts
        world.redis.kill()
        await asyncio.to_thread(world.redis.start)  # the same port, empty
        await world.writes.change_price(world.urls["a"])
        world.readers.idle = set()
        since = world.writes.acked[-1][0]
        await until(lambda: world.recovered(since), "HITs with the newest price after the restart")

        # And a write while Redis is gone, under reads.
        world.redis.kill()
        lost = time.monotonic()
        await world.writes.change_price(world.urls["b"])
        await asyncio.sleep(1)
        back = time.monotonic()
        await asyncio.to_thread(world.redis.start)
        assert no_hit_between(world.readers.reads, lost, back, {"a", "b"}) == []
        since = world.writes.acked[-1][0]
        await until(lambda: world.recovered(since), "HITs with the newest price after the restart")
        for via in ("a", "b"):
            await world.change_and_recover(via)


async def test_a_frozen_redis_is_bypassed_and_nothing_stale_follows_it(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    async with fleet(tmp_path, pg_databases) as world:
        await world.change_and_recover("a")
        world.readers.idle = {"a"}  # the writer gets no lookups that would send its bump
        world.redis.freeze()
        frozen = time.monotonic()
        try:
            await world.writes.change_price(world.urls["a"])  # its bump times out
            await asyncio.sleep(1)
        finally:
            thawed = time.monotonic()
            world.redis.thaw()
        assert no_hit_between(world.readers.reads, frozen, thawed, {"a", "b"}) == []
        newest = world.writes.acked[-1]

        async def b_hits_the_new_price() -> bool:
            return any(
                r.instance == "b"
                and r.sent > newest[0]
                and r.x_cache == "HIT"
                and r.cents == newest[1]
                for r in world.readers.reads
            )

        await until(b_hits_the_new_price, "b's cache in use after the thaw")
        world.readers.idle = set()
        await until(lambda: world.recovered(newest[0]), "HITs with the newest price after the thaw")
        await world.change_and_recover("b")


async def test_an_instance_cut_off_from_redis_still_invalidates_the_others(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    async with fleet(tmp_path, pg_databases) as world:
        await world.change_and_recover("a")
        world.proxy.cut()
        cut = time.monotonic()
        # "a" cannot send the bump; "b" reads it from the database and sends it.
        await world.writes.change_price(world.urls["a"])
        since = world.writes.acked[-1][0]

        async def b_serves_the_new_price_from_the_cache() -> bool:
            newest = world.writes.acked[-1][1]
            return {
                r.kind
                for r in world.readers.reads
                if r.instance == "b" and r.sent > since and r.x_cache == "HIT" and r.cents == newest
            } == set(Readers.KINDS)

        await until(b_serves_the_new_price_from_the_cache, "b's cache in use during the cut")
        a_metrics, b_metrics = await world.metrics("a"), await world.metrics("b")
        assert metric(a_metrics, "gateway_cache_invalidations_pending") >= 1
        assert metric(a_metrics, "gateway_cache_invalidation_failures_total") >= 1
        assert metric(b_metrics, "gateway_cache_invalidations_relayed_total") >= 1
        await world.writes.change_price(world.urls["b"])  # b can send its own
        await asyncio.sleep(0.5)
        mended = time.monotonic()
        world.proxy.mend()
        assert no_hit_between(world.readers.reads, cut, mended, {"a"}) == []
        since = world.writes.acked[-1][0]
        await until(lambda: world.recovered(since), "a's cache back after the cut mends")
        assert metric(await world.metrics("a"), "gateway_cache_invalidations_pending") == 0


@pytest.fixture(autouse=True)
def _redis_server_installed() -> None:
    import shutil

    assert shutil.which("redis-server"), "the fault tests start redis-server themselves"
