"""The Redis store's local copies of entries (gateway.cache.store.RedisStore.copies):
served only while Redis confirms they are current, byte for byte what Redis holds."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from gateway.cache.store import Entry, RedisStore
from gateway.redis_client import Commands, connect
from gateway.settings import Settings
from tests.cache_world import CacheSetup, CacheWorld
from tests.conftest import REDIS_URL
from tests.test_cache_writes import gql_reviews, rest_patch_me

PAGE = "/api/v2/products?limit=5&sort=name"


async def _entry_keys(world: CacheWorld) -> list[bytes]:
    client = aioredis.from_url(REDIS_URL)
    try:
        return [
            key
            async for key in client.scan_iter(match=world.setup.prefix + "r:*")
            if not key.endswith(b":lock")
        ]
    finally:
        await client.aclose()


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_a_copy_answers_only_while_redis_still_holds_the_entry(
    cache_world: CacheWorld,
) -> None:
    store = cache_world.gateway.app.state.cache.store
    assert isinstance(store, RedisStore)
    miss, first_hit, copy_hit = [await cache_world.rest(PAGE) for _ in range(3)]
    assert [r.headers["x-cache"] for r in (miss, first_hit, copy_hit)] == ["MISS", "HIT", "HIT"]
    assert miss.content == first_hit.content == copy_hit.content
    assert miss.headers["etag"] == copy_hit.headers["etag"]
    assert len(store.copies) == 1

    # The entry leaves Redis (its TTL, an eviction): the copy must not outlive it.
    [key] = await _entry_keys(cache_world)
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.delete(key)
    finally:
        await client.aclose()
    again = await cache_world.rest(PAGE)
    assert again.headers["x-cache"] == "MISS"
    assert again.content == miss.content


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_a_write_makes_the_copy_unreachable_at_once(cache_world: CacheWorld) -> None:
    for _ in range(3):
        warm = await gql_reviews(cache_world)
    assert warm.x_cache == "HIT"
    assert cache_world.gateway.app.state.cache.store.copies
    await rest_patch_me(cache_world, "Copy Breaker")
    seen = await gql_reviews(cache_world)
    assert (seen.x_cache, "Copy Breaker" in seen.text) == ("MISS", True)
    seen = await gql_reviews(cache_world)
    assert (seen.x_cache, "Copy Breaker" in seen.text) == ("HIT", True)


def redis_calls() -> Commands:
    """The gateway's calls on a client of the test Redis (it connects on first use)."""
    client = connect(Settings(redis_url=REDIS_URL, redis_timeout_seconds=5))
    assert client is not None
    return Commands(client)


def test_copies_stay_within_their_byte_budget() -> None:
    store = RedisStore(redis_calls(), "unused:", retry_seconds=1, copies_max_bytes=800)
    for i in range(10):
        store._keep(f"base{i}", b"1", Entry(200, (), b"x" * 90), 100)
    assert list(store.copies) == [f"base{i}" for i in range(2, 10)]
    assert store.copy_bytes == 800
    store._keep("base9", b"2", Entry(200, (), b"y" * 90), 100)  # replaced, not added
    assert (len(store.copies), store.copy_bytes) == (8, 800)
    store._keep("giant", b"1", Entry(200, (), b"z" * 500), 500)  # over an eighth: not kept
    assert "giant" not in store.copies


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_a_copy_in_use_is_the_last_to_be_dropped(cache_setup: CacheSetup) -> None:
    entry = Entry(200, (), b"x" * 90)
    size = len(entry.encode())
    calls = redis_calls()
    store = RedisStore(calls, cache_setup.prefix, retry_seconds=1, copies_max_bytes=size * 8)
    try:

        async def read(base: str) -> Entry | None:
            stamp, found = await store.lookup(base, ["catalog"])
            if found is None:
                await store.put(base + stamp, entry, 60)
                stamp, found = await store.lookup(base, ["catalog"])
            return found

        for i in range(8):
            assert await read(f"base{i}") == entry
        assert list(store.copies) == [f"base{i}" for i in range(8)]
        assert await read("base0") == entry  # answered from the copy: now the newest
        assert await read("base8") == entry  # over budget: the least recently used goes
        assert list(store.copies) == [*(f"base{i}" for i in range(2, 8)), "base0", "base8"]
    finally:
        await calls.client.aclose()


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_versions_never_repeat_when_redis_forgets_them(cache_setup: CacheSetup) -> None:
    """Tag versions lost (an empty restart, an eviction) come back as new tokens: a copy
    or entry made under the old stamp is never current again."""
    calls = redis_calls()
    store = RedisStore(calls, cache_setup.prefix, retry_seconds=1)
    client = aioredis.from_url(REDIS_URL)
    try:
        seen = set()
        for _ in range(5):
            stamp, _ = await store.lookup("base", ["catalog"])
            await store.bump(["catalog"])
            after, _ = await store.lookup("base", ["catalog"])
            await client.delete(store.tag_key("catalog"))  # Redis forgets it
            seen |= {stamp, after}
        assert len(seen) == 10
    finally:
        await client.aclose()
        await calls.client.aclose()
