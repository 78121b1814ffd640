"""Where cached responses live: Redis (shared by every worker) or a bounded in-process LRU.

Both stores key an entry by ``<base><stamp>``, where the stamp is the current versions
of the tags the entry depends on. A write bumps the versions of the tags it touched, so
every older entry stops being found at once (it expires by its TTL): invalidation is one
``INCR`` per tag, never a scan. A lookup reads the versions and the entry in one Redis
round trip (a Lua script).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

# Versions and the entry at those versions, in one round trip. A missing version is "0".
LOOKUP = """
local versions = redis.call('MGET', unpack(KEYS))
for i = 1, #versions do
  if not versions[i] then versions[i] = '0' end
end
local stamp = table.concat(versions, '.')
return {stamp, redis.call('GET', ARGV[1] .. stamp)}
"""


class Entry(NamedTuple):
    """A stored response: status, the headers that matter (raw, lower-case) and body."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def encode(self) -> bytes:
        # Header names and values never hold NUL or a newline (HTTP forbids them).
        flat = b"\x00".join(part for pair in self.headers for part in pair)
        return b"%d\n%s\n%s" % (self.status, flat, self.body)

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        status, flat, body = raw.split(b"\n", 2)
        parts = flat.split(b"\x00") if flat else []
        return cls(int(status), tuple(zip(parts[::2], parts[1::2], strict=True)), body)


class StoreUnavailable(Exception):
    """The shared store cannot be reached: serve without the cache."""


class MemoryStore:
    """One process's cache: an LRU of at most ``max_entries``, each with a TTL."""

    shared = False

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.versions: dict[str, int] = {}
        self.entries: OrderedDict[str, tuple[float, Entry]] = OrderedDict()

    def stamp(self, tags: Sequence[str]) -> str:
        return ".".join(str(self.versions.get(tag, 0)) for tag in tags)

    async def lookup(self, base: str, tags: Sequence[str]) -> tuple[str, Entry | None]:
        stamp = self.stamp(tags)
        return stamp, await self.get(base + stamp)

    async def get(self, key: str) -> Entry | None:
        found = self.entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires < time.monotonic():
            del self.entries[key]
            return None
        self.entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: Entry, ttl: int) -> None:
        self.entries[key] = (time.monotonic() + ttl, entry)
        self.entries.move_to_end(key)
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)

    async def bump(self, tags: Iterable[str]) -> None:
        for tag in tags:
            self.versions[tag] = self.versions.get(tag, 0) + 1

    async def claim(self, key: str, seconds: float) -> tuple[bool, Entry | None]:
        # One process: the middleware's per-key futures already collapse recomputes.
        return True, await self.get(key)

    async def poll(self, key: str) -> tuple[Entry | None, bool]:
        return await self.get(key), False

    async def release(self, key: str) -> None:
        return None

    async def close(self) -> None:
        self.entries.clear()


class RedisStore:
    """Entries and tag versions in Redis, under ``prefix``; failures raise
    ``StoreUnavailable`` fast (short socket timeouts, no retries) and open a breaker for
    ``retry_seconds`` so a dead Redis costs nothing per request.

    A version bump that fails is remembered and retried before the next lookup: until it
    succeeds this process bypasses the cache, so an entry made stale by a write it could
    not announce is never served by it.
    """

    shared = True

    def __init__(self, url: str, prefix: str, *, timeout: float, retry_seconds: float) -> None:
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        # One deadline per call (``_call``) rather than redis-py's socket timeout, which
        # wraps every command's send in ``asyncio.wait_for``: a task per cache lookup.
        self.client: Any = aioredis.from_url(
            url, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._lookup = self.client.register_script(LOOKUP)
        self.down_until = 0.0
        self.pending: set[str] = set()

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}t:{tag}"

    async def _call(self, coroutine: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await coroutine
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            self.down_until = time.monotonic() + self.retry_seconds
            raise StoreUnavailable(str(exc)) from exc

    def _check(self) -> None:
        if self.down_until and time.monotonic() < self.down_until:
            raise StoreUnavailable("redis marked down")

    async def lookup(self, base: str, tags: Sequence[str]) -> tuple[str, Entry | None]:
        self._check()
        if self.pending:
            await self._flush()
        stamp, raw = await self._call(
            self._lookup(keys=[self.tag_key(tag) for tag in tags], args=[base]))
        return stamp.decode(), (Entry.decode(raw) if raw is not None else None)

    async def get(self, key: str) -> Entry | None:
        self._check()
        raw = await self._call(self.client.get(key))
        return Entry.decode(raw) if raw is not None else None

    async def put(self, key: str, entry: Entry, ttl: int) -> None:
        self._check()
        await self._call(self.client.set(key, entry.encode(), ex=ttl))

    async def bump(self, tags: Iterable[str]) -> None:
        self.pending.update(tags)
        self._check()
        await self._flush()

    async def _flush(self) -> None:
        tags = sorted(self.pending)
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.incr(self.tag_key(tag))
        await self._call(pipe.execute())
        self.pending.difference_update(tags)

    async def claim(self, key: str, seconds: float) -> tuple[bool, Entry | None]:
        """Takes the key's recompute lock, and reads the entry in the same round trip:
        a recompute that finished since our lookup is not repeated."""
        self._check()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key + ":lock", b"1", nx=True, px=int(seconds * 1000))
        pipe.get(key)
        locked, raw = await self._call(pipe.execute())
        return bool(locked), (Entry.decode(raw) if raw is not None else None)

    async def poll(self, key: str) -> tuple[Entry | None, bool]:
        """The entry, and whether its recompute lock is still held (one round trip)."""
        self._check()
        pipe = self.client.pipeline(transaction=False)
        pipe.get(key)
        pipe.exists(key + ":lock")
        raw, locked = await self._call(pipe.execute())
        return (Entry.decode(raw) if raw is not None else None), bool(locked)

    async def release(self, key: str) -> None:
        self._check()
        await self._call(self.client.delete(key + ":lock"))

    async def close(self) -> None:
        await self.client.aclose()
