"""The process's one Redis client, made from the settings, and the calls the gateway makes.

``connect(settings)`` builds a redis-py asyncio client: ``REDIS_URL`` (``redis://`` or
``rediss://`` for TLS, ``user:password@`` for an ACL user, ``/db``), a timeout for
connecting and for every reply (``REDIS_TIMEOUT_SECONDS``, no retries: callers fall back
at once and leave Redis alone for a while), a ``PING`` before using a connection idle for
``REDIS_HEALTH_CHECK_SECONDS``, and at most ``REDIS_MAX_CONNECTIONS``. With
``REDIS_SENTINELS`` the master of ``REDIS_SENTINEL_SERVICE`` is asked of the sentinels
(and asked again after a failover); with ``REDIS_CLUSTER=true`` the URL names one node of
a Redis Cluster. The cache, the rate limits, the replica floor and the readiness probe
share the client, so the probe tests the connections that serve requests.

``Commands`` is the three calls they make (one command, several in one round trip, a Lua
script by ``EVALSHA``). ``REDIS_CLIENT=batched`` sends the commands asked for in one loop
turn in one redis-py pipeline instead of one round trip each (``Batched``);
``docs/design/redis-client.md`` has what each costs.

In a Cluster a script's keys and a pipeline's keys must share a hash slot: ``slot_prefix``
puts a hash tag in a key prefix, so every key under it lands in one slot.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

from data.running import running_loop
from gateway.settings import Settings

Arg = str | bytes | int | float
Client = Redis | RedisCluster

# What a Redis call can fail with: the server away, too slow, refusing, or a cluster in flux.
FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)


def _options(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_timeout_seconds,
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "health_check_interval": settings.redis_health_check_seconds,
        # A failed call is not tried again: the callers fall back and back off.
        "retry": Retry(NoBackoff(), 0),
    }


def connect(settings: Settings) -> Client | None:
    """The client ``settings`` ask for (``None`` without ``REDIS_URL``); it connects on
    first use."""
    url = settings.redis_url
    if not url:
        return None
    options = _options(settings)
    if settings.redis_cluster:
        return RedisCluster.from_url(url, **options)
    if settings.redis_sentinels:
        # The URL says how to talk to the master (TLS, user, password, db); the sentinels
        # say where it is. They are asked with the same timeouts, without credentials.
        node: dict[str, Any] = dict(parse_url(url))
        node.pop("host", None)
        node.pop("port", None)
        sentinel = Sentinel(
            _sentinel_addresses(settings),
            sentinel_kwargs={
                "socket_timeout": settings.redis_timeout_seconds,
                "socket_connect_timeout": settings.redis_timeout_seconds,
            },
        )
        connection_class = node.pop("connection_class", None)
        if connection_class is not None and connection_class.__name__ == "SSLConnection":
            node["ssl"] = True
        master: Redis = sentinel.master_for(
            settings.redis_sentinel_service,
            max_connections=settings.redis_max_connections,
            **node,
            **options,
        )
        return master
    # A request that finds every connection busy waits for one (at most the timeout);
    # redis-py's default pool would fail it at once.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_seconds,
        **options,
    )
    return Redis.from_pool(pool)


def subscriber(settings: Settings, name: str) -> Redis | None:
    """A client for pub/sub (the event bus), from the same settings as ``connect``: TLS,
    ACL user and db from ``REDIS_URL``, the master from the sentinels with
    ``REDIS_SENTINELS``. A subscription waits for messages as long as it lives, so its
    replies have no timeout (connecting has ``REDIS_TIMEOUT_SECONDS``). In a Cluster it
    subscribes at the URL's node: a Cluster carries every ``PUBLISH`` to all its nodes.
    ``name`` tells its connections apart in ``CLIENT LIST``."""
    url = settings.redis_url
    if not url:
        return None
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "client_name": name,
    }
    if settings.redis_sentinels and not settings.redis_cluster:
        node: dict[str, Any] = dict(parse_url(url))
        node.pop("host", None)
        node.pop("port", None)
        connection_class = node.pop("connection_class", None)
        if connection_class is not None and connection_class.__name__ == "SSLConnection":
            node["ssl"] = True
        sentinel = Sentinel(
            _sentinel_addresses(settings),
            sentinel_kwargs={
                "socket_timeout": settings.redis_timeout_seconds,
                "socket_connect_timeout": settings.redis_timeout_seconds,
            },
        )
        client: Redis = sentinel.master_for(settings.redis_sentinel_service, **node, **options)
        return client
    return Redis.from_url(url, **options)


def _sentinel_addresses(settings: Settings) -> list[tuple[str, int]]:
    return [
        (host, int(port))
        for host, _, port in (item.rpartition(":") for item in settings.redis_sentinels)
    ]


def slot_prefix(prefix: str, settings: Settings) -> str:
    """``prefix`` as a hash tag in a Cluster (``{prefix}``): every key that starts with it
    then hashes to one slot, so one script or pipeline may touch several of them."""
    return "{" + prefix + "}" if settings.redis_cluster else prefix


class Script:
    """A Lua script run by ``EVALSHA`` (``EVAL`` once when the server does not know it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


class Commands:
    """The gateway's Redis calls on ``client``: one round trip each. Failures are
    redis-py's (``FAILURES``)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, *args: Arg) -> Any:
        """One command's reply."""
        return await self.client.execute_command(*args)

    async def pipeline(self, commands: Sequence[tuple[Arg, ...]]) -> list[Any]:
        """Several commands in one round trip; their replies in order (the first error
        raises)."""
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()

    async def run(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        """The script's reply, loading it into the server the first time it is missing."""
        try:
            return await self.call("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call("EVAL", script.text, len(keys), *keys, *args)


class Batched(Commands):
    """``Commands`` whose single commands asked for in one loop turn go out together, in
    one redis-py pipeline (no transaction), each caller getting its own reply or error.

    Under load many requests ask in the same turn: one pool checkout, one write and one
    read for all of them instead of one each. Alone, a command waits for the end of the
    turn it was asked in (nothing longer).
    """

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.queue: list[tuple[tuple[Arg, ...], asyncio.Future[Any]]] = []

    async def call(self, *args: Arg) -> Any:
        loop = running_loop()
        if not self.queue:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self.queue.append((args, future))
        return await future

    def _flush(self) -> None:
        batch, self.queue = self.queue, []
        task = asyncio.ensure_future(self._send(batch))
        task.add_done_callback(_quiet)

    async def _send(self, batch: list[tuple[tuple[Arg, ...], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                replies: list[Any] = [await self.client.execute_command(*batch[0][0])]
            else:
                pipe = self.client.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # noqa: BLE001 - every caller hears why
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)


def _quiet(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def commands(client: Client, settings: Settings) -> Commands:
    """The calls for ``client`` in the way ``REDIS_CLIENT`` picks."""
    return Batched(client) if settings.redis_client == "batched" else Commands(client)


async def ping(client: Client) -> None:
    """Raises unless the server answers ``PING`` (through the client that serves)."""
    await client.ping()
