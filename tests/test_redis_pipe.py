"""The pipelined Redis connection (gateway.redis_pipe): replies in order under
concurrency, scripts loaded on NOSCRIPT, errors as redis-py's, and recovery from a
server that goes silent or away."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from gateway.redis_pipe import PipelinedRedis, Script
from tests.cache_world import delete_prefix, redis_reachable
from tests.conftest import REDIS_URL, REQUIRE_SERVICES


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """This test's own key space in the real Redis, deleted afterwards."""
    if not await redis_reachable():
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is not reachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    name = f"gwtest:pipe:{uuid.uuid4().hex}:"
    yield name
    await delete_prefix(name)


async def test_concurrent_calls_get_their_own_replies(prefix: str) -> None:
    redis = PipelinedRedis(REDIS_URL)
    try:
        await redis.pipeline(
            [("SET", f"{prefix}{i}", f"value-{i}" * (i % 50 + 1)) for i in range(300)]
        )
        replies = await asyncio.gather(*(redis.call("GET", f"{prefix}{i}") for i in range(300)))
        assert replies == [(f"value-{i}" * (i % 50 + 1)).encode() for i in range(300)]
        assert await redis.call("GET", f"{prefix}missing") is None
        assert await redis.call("INCR", f"{prefix}n") == 1
    finally:
        await redis.aclose()


async def test_a_script_the_server_lacks_is_loaded_then_run_by_hash(prefix: str) -> None:
    # A text no server has seen: the first run must fall back from EVALSHA to EVAL.
    script = Script(f"-- {uuid.uuid4().hex}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    redis = PipelinedRedis(REDIS_URL)
    plain = aioredis.from_url(REDIS_URL)
    try:
        assert await plain.script_exists(script.sha) == [False]
        assert await redis.run(script, [f"{prefix}s"], [5]) == 5
        assert await plain.script_exists(script.sha) == [True]
        assert await redis.run(script, [f"{prefix}s"], [2]) == 7
    finally:
        await redis.aclose()
        await plain.aclose()


async def test_error_replies_raise_without_breaking_the_stream(prefix: str) -> None:
    redis = PipelinedRedis(REDIS_URL)
    try:
        await redis.call("SET", f"{prefix}text", "abc")
        with pytest.raises(ResponseError, match="not an integer"):
            await redis.call("INCR", f"{prefix}text")
        with pytest.raises(ResponseError):
            await redis.pipeline([("GET", f"{prefix}text"), ("INCR", f"{prefix}text")])
        assert await redis.call("GET", f"{prefix}text") == b"abc"
    finally:
        await redis.aclose()


async def test_database_number_from_the_url(prefix: str) -> None:
    base = REDIS_URL.rsplit("/", 1)[0]
    redis = PipelinedRedis(f"{base}/3")
    plain = aioredis.from_url(f"{base}/3")
    try:
        await redis.call("SET", f"{prefix}db", "three")
        assert await plain.get(f"{prefix}db") == b"three"
    finally:
        await plain.delete(f"{prefix}db")
        await redis.aclose()
        await plain.aclose()


async def test_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        PipelinedRedis("memcached://127.0.0.1:11211")


async def test_nothing_listening_is_a_connection_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    redis = PipelinedRedis(f"redis://127.0.0.1:{port}/0")
    with pytest.raises(RedisConnectionError):
        await redis.call("PING")
    assert isinstance(RedisConnectionError("x"), RedisError)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def fake_redis(handle: Handler) -> AsyncIterator[PipelinedRedis]:
    """A client of a local TCP server whose connections ``handle`` serves."""
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    redis = PipelinedRedis(f"redis://127.0.0.1:{port}/0")
    try:
        yield redis
    finally:
        await redis.aclose()
        server.close()
        await server.wait_closed()


async def test_a_silent_server_then_a_live_one() -> None:
    """A call that times out is discarded with its connection; the next call connects
    again and is answered (here by a server that answers from then on)."""
    answering = asyncio.Event()
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while data := await reader.read(65536):
                if answering.is_set():
                    writer.write(b"+PONG\r\n" * data.count(b"PING"))
                    await writer.drain()
        finally:
            writer.close()

    async with fake_redis(handle) as redis:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await redis.call("PING")
        redis.discard()
        answering.set()
        assert await redis.call("PING") == b"PONG"
        assert connections == 2


async def test_a_server_that_closes_fails_every_waiter_and_the_next_call_reconnects() -> None:
    closing = True
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        data = await reader.read(65536)
        if not closing:
            writer.write(b"+PONG\r\n" * data.count(b"PING"))
            await writer.drain()
            await reader.read(65536)
        writer.close()

    async with fake_redis(handle) as redis:
        results = await asyncio.gather(
            *(redis.call("PING") for _ in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        closing = False
        assert await redis.call("PING") == b"PONG"
        assert connections == 2


async def test_a_reply_that_is_not_resp_fails_the_call_and_the_next_reconnects() -> None:
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        garbage = connections == 1
        while data := await reader.read(65536):
            writer.write(b"?not resp\r\n" if garbage else b"+PONG\r\n" * data.count(b"PING"))
            await writer.drain()
        writer.close()

    async with fake_redis(handle) as redis:
        with pytest.raises(RedisConnectionError, match="bad reply"):
            await redis.call("PING")
        assert await redis.call("PING") == b"PONG"
