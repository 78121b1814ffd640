"""Where cached responses live: Redis (shared by every worker) or a bounded in-process LRU.

Both stores key an entry by ``<base><stamp>``, where the stamp is the current versions
of the tags the entry depends on. A write bumps the versions of the tags it touched, so
every older entry stops being found at once (it expires by its TTL): invalidation is one
command per tag, never a scan. A lookup reads the versions and the entry in one Redis
round trip (a Lua script).

In Redis a version is a random 64-bit token, never a counter: a Redis that restarts
empty (or evicts a version) would count from 0 again and bring back stamps that entries
and local copies made before the restart still carry. A write sets a fresh token; a
lookup that finds a version missing sets the one it brought. Tokens never repeat, so a
stamp names one state of its tags, once.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from gateway.redis_client import FAILURES, Commands, Script

# Versions and the entry at those versions, in one round trip. A missing version becomes
# ARGV[3], a token fresh for this call (so a version never takes a value it had before).
# ARGV[2] is the stamp of the copy the caller holds of this entry ('' for none): when it
# is still the current one and the entry still exists, 1 stands in for the body.
LOOKUP = """
local versions = redis.call('MGET', unpack(KEYS))
for i = 1, #versions do
  if not versions[i] then
    versions[i] = ARGV[3]
    redis.call('SET', KEYS[i], ARGV[3])
  end
end
local stamp = table.concat(versions, '.')
local key = ARGV[1] .. stamp
if ARGV[2] == stamp and redis.call('EXISTS', key) == 1 then
  return {stamp, 1}
end
return {stamp, redis.call('GET', key)}
"""


# Tokens from a generator of the store's own (no code that seeds ``random`` for repeatable
# data can make them repeat), seeded from the OS, and again in each forked worker.
_tokens = random.Random()
os.register_at_fork(after_in_child=_tokens.seed)


def new_version() -> bytes:
    """A tag version that has never been used: 64 random bits."""
    return b"%016x" % _tokens.getrandbits(64)


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
    ``StoreUnavailable`` fast (no reply within the client's ``REDIS_TIMEOUT_SECONDS``, no
    retries) and open a breaker for ``retry_seconds`` so a dead Redis costs nothing per
    request.

    A version bump that fails is remembered (``pending``) and sent again before the next
    lookup and by the invalidation courier (``gateway.cache.courier``) in the background:
    until it is sent this process bypasses the cache, so an entry made stale by a write it
    could not announce is never served by it. Other processes learn of it through the
    database; until this process has checked there recently (``trusted_until``, set by
    the courier) it does not serve from Redis either.

    Commands go through the process's one client (``gateway.redis_client``). In a
    Cluster ``prefix`` carries a hash tag: a lookup's script reads the tags' versions and
    the entry, so all of them live in one slot.

    The process keeps the last entry it read for each key base (``copies``, at most
    ``copies_max_bytes`` in all, the least recently used dropped first). A lookup says
    which stamp that copy has; Redis still decides: only when that stamp is the current
    one and the entry is still stored does it answer "1" instead of sending the body
    again. Entries are written under the stamp their lookup saw, every write gives its
    tags versions never used before, before it returns: a copy is served only under a
    stamp that is still current, so never after the write that made it stale, nor after
    Redis lost the versions it was made under. What is saved is moving and decoding the
    body on every hit.
    """

    shared = True

    def __init__(
        self,
        client: Commands,
        prefix: str,
        *,
        retry_seconds: float,
        copies_max_bytes: int = 32 << 20,
    ) -> None:
        self.prefix = prefix
        self.retry_seconds = retry_seconds
        self.client = client
        self._lookup = Script(LOOKUP)
        self.down_until = 0.0
        self.pending: set[str] = set()
        # Until when lookups may be answered from Redis (the courier keeps moving it).
        self.trusted_until = math.inf
        self.copies: OrderedDict[str, tuple[bytes, Entry, int]] = OrderedDict()
        self.copies_max_bytes = copies_max_bytes
        self.copy_bytes = 0

    def tag_key(self, tag: str) -> str:
        return f"{self.prefix}t:{tag}"

    async def _call(self, coroutine: Any) -> Any:
        # The client bounds every call (REDIS_TIMEOUT_SECONDS).
        try:
            return await coroutine
        except FAILURES as exc:
            self.down_until = time.monotonic() + self.retry_seconds
            raise StoreUnavailable(str(exc) or type(exc).__name__) from exc

    def _check(self) -> None:
        if self.down_until and time.monotonic() < self.down_until:
            raise StoreUnavailable("redis marked down")

    async def lookup(self, base: str, tags: Sequence[str]) -> tuple[str, Entry | None]:
        self._check()
        if time.monotonic() >= self.trusted_until:
            raise StoreUnavailable("invalidations not confirmed recently")
        if self.pending:
            await self._flush()
        copy = self.copies.get(base)
        stamp, raw = await self._call(
            self.client.run(
                self._lookup,
                [self.tag_key(tag) for tag in tags],
                [base, copy[0] if copy is not None else b"", new_version()],
            )
        )
        if raw is None:
            if copy is not None:  # its stamp has passed: it can never answer again
                self._drop(base)
            return stamp.decode(), None
        if raw == 1:  # our copy is the stored entry
            if copy is None:
                return stamp.decode(), None
            self.copies.move_to_end(base)  # recently used: the last to be dropped
            return stamp.decode(), copy[1]
        entry = Entry.decode(raw)
        self._keep(base, stamp, entry, len(raw))
        return stamp.decode(), entry

    def _drop(self, base: str) -> None:
        old = self.copies.pop(base, None)
        if old is not None:
            self.copy_bytes -= old[2]

    def _keep(self, base: str, stamp: bytes, entry: Entry, size: int) -> None:
        self._drop(base)
        if size > self.copies_max_bytes // 8:
            return  # a rare giant is not worth the room
        self.copies[base] = (stamp, entry, size)
        self.copy_bytes += size
        while self.copy_bytes > self.copies_max_bytes:
            _, (_, _, dropped) = self.copies.popitem(last=False)
            self.copy_bytes -= dropped

    async def get(self, key: str) -> Entry | None:
        self._check()
        raw = await self._call(self.client.call("GET", key))
        return Entry.decode(raw) if raw is not None else None

    async def put(self, key: str, entry: Entry, ttl: int) -> None:
        self._check()
        await self._call(self.client.call("SET", key, entry.encode(), "EX", ttl))

    async def bump(self, tags: Iterable[str]) -> None:
        """Gives each tag a version never used before (one ``SET`` per tag, pipelined);
        on failure the tags stay ``pending``."""
        self.pending.update(tags)
        self._check()
        await self._flush()

    async def _flush(self) -> None:
        tags = sorted(self.pending)
        await self._call(
            self.client.pipeline([("SET", self.tag_key(tag), new_version()) for tag in tags])
        )
        self.pending.difference_update(tags)

    async def send_bumps(self, tags: Iterable[str] = ()) -> None:
        """``bump`` for the background: tries now, whatever the breaker says, and sends
        the pending bumps along."""
        self.pending.update(tags)
        if self.pending:
            await self._flush()

    async def claim(self, key: str, seconds: float) -> tuple[bool, Entry | None]:
        """Takes the key's recompute lock, and reads the entry in the same round trip:
        a recompute that finished since our lookup is not repeated."""
        self._check()
        locked, raw = await self._call(
            self.client.pipeline(
                [("SET", key + ":lock", b"1", "NX", "PX", int(seconds * 1000)), ("GET", key)]
            )
        )
        return locked is not None, (Entry.decode(raw) if raw is not None else None)

    async def poll(self, key: str) -> tuple[Entry | None, bool]:
        """The entry, and whether its recompute lock is still held (one round trip)."""
        self._check()
        raw, locked = await self._call(
            self.client.pipeline([("GET", key), ("EXISTS", key + ":lock")])
        )
        return (Entry.decode(raw) if raw is not None else None), bool(locked)

    async def release(self, key: str) -> None:
        self._check()
        await self._call(self.client.call("DEL", key + ":lock"))

    async def close(self) -> None:
        return None  # the client is the app's, closed by it
