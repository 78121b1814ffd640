"""The replica floor shared through Redis: the newest LSN any writer has committed.

Every writer raises one key to its commit's LSN before its request returns (a Lua script:
set only if higher, so writers racing never lower it); a read that wants the replica reads
it (``data.replica``). LSNs are kept as 16 hex digits, so Lua compares them as strings
(its numbers are doubles, short of 64 bits). Failures fail fast and leave Redis alone for
``retry_seconds``: reads then go to the primary.
"""

from __future__ import annotations

import time

from data.replica import ReplicaRouter
from gateway.redis_client import FAILURES, Commands, Script

RAISE_TO = Script("""
local current = redis.call('GET', KEYS[1])
if not current or current < ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return current
""")


class FloorUnavailable(Exception):
    """Redis did not answer (or is being left alone for a while)."""


class RedisFloorBoard:
    """``data.replica.FloorBoard`` on the process's Redis client (``gateway.redis_client``),
    whose ``REDIS_TIMEOUT_SECONDS`` bounds every call."""

    def __init__(self, client: Commands, key: str, *, retry_seconds: float) -> None:
        self.key = key
        self.retry_seconds = retry_seconds
        self.client = client
        self.down_until = 0.0

    async def _call(self, *command: str | int) -> bytes | None:
        if self.down_until and time.monotonic() < self.down_until:
            raise FloorUnavailable("redis marked down")
        reply: bytes | None
        try:
            if command[0] == "RAISE":
                reply = await self.client.run(RAISE_TO, [self.key], [command[1]])
            else:
                reply = await self.client.call(*command)
        except FAILURES as exc:
            self.down_until = time.monotonic() + self.retry_seconds
            raise FloorUnavailable(str(exc) or type(exc).__name__) from exc
        return reply

    async def raise_to(self, lsn: int) -> None:
        await self._call("RAISE", f"{lsn:016x}")

    async def newest(self) -> int | None:
        raw = await self._call("GET", self.key)
        return int(raw, 16) if raw is not None else None

    async def close(self) -> None:
        return None  # the client is the app's, closed by it


def share_floor(
    router: ReplicaRouter,
    *,
    redis: Commands | None,
    prefix: str,
    retry_seconds: float,
) -> None:
    """Tells ``router`` where every process's writes are known: Redis when there is one,
    else the primary itself (other workers and instances write too, unseen by this one)."""
    if redis is not None:
        router.board = RedisFloorBoard(
            redis, f"{prefix}:replica-floor", retry_seconds=retry_seconds
        )
    else:
        router.floor_from_primary = True
