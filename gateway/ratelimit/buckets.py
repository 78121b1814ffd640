"""Where rate-limit state lives: token buckets and failed-login counts.

With ``REDIS_URL`` both live in Redis, so every worker and instance shares them; each
operation is one atomic Lua script run by ``EVALSHA`` (one round trip on the process's
Redis client, ``gateway.redis_client``; ``EVAL`` again if the server lost it)
and timed by the Redis server's clock, so instances with skewed clocks still agree.
Without Redis, or while Redis cannot be reached, they live in this process (a warning
is logged: limits then hold per worker).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from data.errors import RateLimited
from gateway.redis_client import FAILURES, Commands, Script

log = structlog.get_logger("gateway.ratelimit")

MAX_LOCAL_KEYS = 100_000


@dataclass(frozen=True)
class Spend:
    """One bucket to take ``cost`` tokens from: ``capacity`` tokens, refilled at ``rate``
    tokens a second."""

    key: str
    capacity: int
    rate: float
    cost: int


@dataclass(frozen=True)
class Level:
    remaining: int  # whole tokens left after this request (before it, when refused)
    retry_ms: int  # how long until this bucket could pay the cost (0: it can now)
    reset_ms: int  # how long until the bucket is full again


# All buckets or none: a request refused by one policy spends nothing from the others.
TAKE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels, ok = {}, 1
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local s = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level, ts = tonumber(s[1]), tonumber(s[2])
  if level == nil or ts == nil then level, ts = cap, now end
  level = math.min(cap, level + math.max(0, now - ts) * rate)
  levels[i] = level
  if level < cost then ok = 0 end
end
local out = {ok}
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local level, retry = levels[i], 0
  if ok == 1 then
    level = level - cost
  elseif level < cost then
    retry = math.ceil((cost - level) / rate)
  end
  local reset = math.ceil((cap - level) / rate)
  redis.call('HSET', KEYS[i], 'level', tostring(level), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], reset + 1000)
  out[#out + 1] = math.floor(level)
  out[#out + 1] = retry
  out[#out + 1] = reset
end
return out
"""

# KEYS[1]: the account; returns the milliseconds it stays locked (0: not locked).
CHECK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local locked = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if locked > now then return locked - now end
return 0
"""

# ARGV: failures before a lock, window ms, first lock ms, longest lock ms.
FAIL_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local threshold, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, longest = tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local lock = 0
if failures >= threshold then
  lock = math.min(longest, base * 2 ^ math.min(failures - threshold, 30))
  redis.call('HSET', KEYS[1], 'until', tostring(now + lock))
end
redis.call('PEXPIRE', KEYS[1], window + lock)
return lock
"""


# Gives back what a refused request was charged (up to each bucket's size).
GIVE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local s = redis.call('HMGET', KEYS[i], 'level', 'ts')
  local level, ts = tonumber(s[1]), tonumber(s[2])
  if level ~= nil and ts ~= nil then
    level = math.min(cap, level + math.max(0, now - ts) * rate + cost)
    redis.call('HSET', KEYS[i], 'level', tostring(level), 'ts', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil((cap - level) / rate) + 1000)
  end
end
return 1
"""

TAKE, CHECK, FAIL = Script(TAKE_SCRIPT), Script(CHECK_SCRIPT), Script(FAIL_SCRIPT)
GIVE = Script(GIVE_SCRIPT)


class LocalBuckets:
    """Token buckets in this process (``time.monotonic``), the same arithmetic as Lua."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, spends: Sequence[Spend]) -> tuple[bool, list[Level]]:
        now = time.monotonic() * 1000
        levels = []
        for spend in spends:
            level, at = self._buckets.get(spend.key, (float(spend.capacity), now))
            levels.append(min(spend.capacity, level + max(0.0, now - at) * spend.rate / 1000))
        ok = all(level >= spend.cost for level, spend in zip(levels, spends, strict=True))
        out = []
        for level, spend in zip(levels, spends, strict=True):
            per_ms = spend.rate / 1000
            retry = 0 if ok or level >= spend.cost else math.ceil((spend.cost - level) / per_ms)
            if ok:
                level -= spend.cost
            self._buckets.pop(spend.key, None)  # re-insert: the dict stays in use order
            self._buckets[spend.key] = (level, now)
            out.append(
                Level(math.floor(level), retry, math.ceil((spend.capacity - level) / per_ms))
            )
        if len(self._buckets) > MAX_LOCAL_KEYS:  # forget the least recently used tenth
            for key in list(self._buckets)[: MAX_LOCAL_KEYS // 10]:
                del self._buckets[key]
        return ok, out

    async def give_back(self, spends: Sequence[Spend]) -> None:
        now = time.monotonic() * 1000
        for spend in spends:
            known = self._buckets.get(spend.key)
            if known is not None:
                level = known[0] + max(0.0, now - known[1]) * spend.rate / 1000 + spend.cost
                self._buckets[spend.key] = (min(float(spend.capacity), level), now)


@dataclass
class Backoff:
    """The numbers of the failed-login backoff (seconds)."""

    failures: int
    window: int
    base: int
    longest: int


class LocalAttempts:
    """Failed logins per account in this process."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff
        self._accounts: dict[str, tuple[int, float, float]] = {}  # failures, expires, until

    def locked_for(self, account: str) -> float:
        failures, expires, until = self._accounts.get(account, (0, 0.0, 0.0))
        return max(0.0, until - time.monotonic())

    def fail(self, account: str, *, lock_it: bool = True) -> float:
        now = time.monotonic()
        failures, expires, until = self._accounts.get(account, (0, 0.0, 0.0))
        failures = failures + 1 if expires > now else 1
        lock = 0.0
        if lock_it and failures >= self.backoff.failures:
            lock = min(
                self.backoff.longest,
                self.backoff.base * 2 ** min(failures - self.backoff.failures, 30),
            )
            until = now + lock
        self._accounts.pop(account, None)
        self._accounts[account] = (failures, now + self.backoff.window + lock, until)
        if len(self._accounts) > MAX_LOCAL_KEYS:
            for key in list(self._accounts)[: MAX_LOCAL_KEYS // 10]:
                del self._accounts[key]
        return lock

    def forget(self, account: str) -> None:
        self._accounts.pop(account, None)

    def failures(self, account: str) -> int:
        failures, expires, _ = self._accounts.get(account, (0, 0.0, 0.0))
        return failures if expires > time.monotonic() else 0


REDIS_RETRY_SECONDS = 1.0


class Store:
    """Buckets and login attempts: in Redis when given a client, else (or when it fails)
    here. In a Cluster ``prefix`` carries a hash tag: one request's buckets are taken in
    one script, so all of them live in one slot."""

    def __init__(
        self,
        redis: Commands | None,
        prefix: str,
        backoff: Backoff,
        on_login_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.prefix = prefix
        self.backoff = backoff
        self.on_login_refused = on_login_refused
        self.local = LocalBuckets()
        self.local_attempts = LocalAttempts(backoff)
        self.redis = redis  # the app's client (REDIS_TIMEOUT_SECONDS bounds every call)
        self._warned_at = -math.inf
        self._down_until = 0.0

    async def _run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        assert self.redis is not None
        return await self.redis.run(script, keys, args)  # bounded by the client's timeout

    def _shared(self) -> bool:
        """Redis is configured and has not just failed: after a failure the buckets are
        this process's for ``REDIS_RETRY_SECONDS`` (then Redis is tried again), so a Redis
        that hangs costs one timeout a second, not one per request."""
        return self.redis is not None and time.monotonic() >= self._down_until

    def _fell_back(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + REDIS_RETRY_SECONDS
        if now - self._warned_at > 60:  # once a minute while Redis stays away
            self._warned_at = now
            log.warning("rate_limit_redis_unavailable", error=type(exc).__name__)

    async def take(self, spends: Sequence[Spend]) -> tuple[bool, list[Level]]:
        """Take every spend's cost from its bucket, or (if any cannot pay) none."""
        if self._shared():
            args: list[Any] = []
            for spend in spends:
                args += [spend.capacity, repr(spend.rate / 1000), spend.cost]
            try:
                out = await self._run(TAKE, [self.prefix + s.key for s in spends], args)
            except FAILURES as exc:
                self._fell_back(exc)
            else:
                levels = [
                    Level(int(out[i]), int(out[i + 1]), int(out[i + 2]))
                    for i in range(1, len(out), 3)
                ]
                return bool(out[0]), levels
        return await self.local.take(spends)

    async def give_back(self, spends: Sequence[Spend]) -> None:
        """Return what ``take`` charged for a request that was refused without running."""
        if self._shared():
            args: list[Any] = []
            for spend in spends:
                args += [spend.capacity, repr(spend.rate / 1000), spend.cost]
            try:
                await self._run(GIVE, [self.prefix + s.key for s in spends], args)
                return
            except FAILURES as exc:
                self._fell_back(exc)
        await self.local.give_back(spends)

    # The login service's LoginAttempts protocol (data/attempts.py).
    def _account(self, account: str) -> str:
        return f"{self.prefix}login:{account}"

    async def check(self, account: str) -> None:
        """Refuse while the account is locked after repeated failures."""
        locked_ms: float = 0
        if self._shared():
            try:
                locked_ms = int(await self._run(CHECK, [self._account(account)], []))
            except FAILURES as exc:
                self._fell_back(exc)
                locked_ms = self.local_attempts.locked_for(account) * 1000
        else:
            locked_ms = self.local_attempts.locked_for(account) * 1000
        if locked_ms > 0:
            self.on_login_refused()
            seconds = math.ceil(locked_ms / 1000)
            raise RateLimited(
                f"Too many failed logins for this account; try again in {seconds} s.",
                retry_after=seconds,
            )

    async def failures(self, account: str) -> int:
        """The account's failures in the current window."""
        if self._shared():
            try:
                assert self.redis is not None
                return int(await self.redis.call("HGET", self._account(account), "failures") or 0)
            except FAILURES as exc:
                self._fell_back(exc)
        return self.local_attempts.failures(account)

    async def failed(self, account: str) -> None:
        """Count a failure; from the threshold on, each locks the account twice as long."""
        if self._shared():
            b = self.backoff
            try:
                await self._run(
                    FAIL,
                    [self._account(account)],
                    [b.failures, b.window * 1000, b.base * 1000, b.longest * 1000],
                )
                return
            except FAILURES as exc:
                self._fell_back(exc)
        self.local_attempts.fail(account)

    async def count_failure(self, account: str) -> None:
        """Count a failure without ever locking (``failures`` reads the count)."""
        if self._shared():
            try:
                await self._run(
                    FAIL, [self._account(account)], [2**31, self.backoff.window * 1000, 1, 1]
                )
                return
            except FAILURES as exc:
                self._fell_back(exc)
        self.local_attempts.fail(account, lock_it=False)

    async def succeeded(self, account: str) -> None:
        """A correct password forgets the account's failures."""
        if self._shared():
            try:
                assert self.redis is not None
                await self.redis.call("DEL", self._account(account))
            except FAILURES as exc:
                self._fell_back(exc)
        self.local_attempts.forget(account)

    async def aclose(self) -> None:
        return None  # the client is the app's, closed by it
