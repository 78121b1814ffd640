"""Delivers cache invalidations that missed Redis, and says when Redis may be trusted.

A write commits, then bumps its tags in Redis (``RedisStore.bump``). When that fails:

- the tags stay pending in this process, which bypasses the cache until they are sent;
  the courier sends them again every poll, in the background, until Redis takes them;
- they are also recorded in the database (``data.invalidations``), which every instance
  shares: each instance's courier reads that table every ``poll_seconds``, sends what
  it finds to Redis, and deletes it. A process serves from Redis only while its last
  complete check began less than ``trust_seconds`` ago (``RedisStore.trusted_until``):
  one that cannot check (database or Redis unreachable from it) stops serving entries
  within that bound;
- the write returns once its tags are sent, or after ``trust_seconds`` at most: by then
  every other process has either sent them or stopped trusting the entries they make
  stale. So after any acknowledged write no instance serves an older answer, even when
  the writer never reaches Redis again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from data.db import PoolSettings, make_engine
from data.invalidations import (
    forget_invalidations,
    record_invalidations,
    undelivered_invalidations,
)
from gateway.cache.store import RedisStore, StoreUnavailable

log = structlog.get_logger("gateway.cache")

# What a check can fail with: the database or Redis unreachable, or too slow.
FAILURES = (StoreUnavailable, SQLAlchemyError, OSError, TimeoutError)


class InvalidationCourier:
    """One per process with a Redis cache; ``start`` before serving, ``close`` after."""

    def __init__(
        self,
        store: RedisStore,
        database_url: str,
        *,
        poll_seconds: float,
        trust_seconds: float,
        metrics: Any = None,
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.poll_seconds = poll_seconds
        self.trust_seconds = trust_seconds
        self.metrics = metrics
        self.unrecorded: set[str] = set()  # pending tags the database has not got either
        self.engine: AsyncEngine | None = None
        self.reads: AsyncEngine | None = None
        self.task: asyncio.Task[None] | None = None
        self.failing = False  # for one log line per change of state, not one per poll
        store.trusted_until = 0.0  # not before the first check

    async def start(self) -> None:
        # An engine of its own: its checks never wait behind requests for a connection,
        # and they are not counted as a request's statements.
        self.engine = make_engine(
            self.database_url, PoolSettings(size=1, max_overflow=2, timeout=self.trust_seconds)
        )
        self.reads = self.engine
        if self.engine.dialect.name == "postgresql":
            self.reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        await self.check()
        self.task = asyncio.create_task(self._run(), name="cache-invalidation-courier")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        if self.store.pending:  # a last try; the database row (if any) outlives us
            try:
                await self.store.send_bumps()
            except StoreUnavailable:
                pass
        if self.engine is not None:
            await self.engine.dispose()

    def _engines(self) -> tuple[AsyncEngine, AsyncEngine]:
        """The engine for writes and the one for reads (autocommit on PostgreSQL)."""
        if self.engine is None or self.reads is None:
            raise RuntimeError("the invalidation courier is not started")
        return self.engine, self.reads

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.check()
            except Exception:  # a bug must not end the courier: it would stop trusting
                log.exception("cache_courier_failed")

    async def check(self) -> None:
        """One round: send this process's pending tags, then what the database holds,
        and trust Redis for ``trust_seconds`` from this round's start if all went out."""
        began = time.monotonic()
        store = self.store
        try:
            async with asyncio.timeout(self.trust_seconds):
                if store.pending:
                    await self._send_pending()
                engine, reads = self._engines()
                rows = await undelivered_invalidations(reads)
                if rows:
                    await store.send_bumps({tag for _, tags in rows for tag in tags})
                    await forget_invalidations(engine, [row_id for row_id, _ in rows])
                    if self.metrics is not None:
                        self.metrics.cache_invalidations_relayed.inc(len(rows))
                    log.info("cache_invalidations_relayed", rows=len(rows))
        except FAILURES as exc:
            self._state(failing=True, error=str(exc) or type(exc).__name__)
            return
        finally:
            self._gauges()
        store.trusted_until = began + self.trust_seconds
        self._state(failing=False)

    async def _send_pending(self) -> None:
        try:
            await self.store.send_bumps()
        except StoreUnavailable:
            self._failed_send()
            if self.unrecorded & self.store.pending:  # the database may be back first
                await self._record(self.unrecorded & self.store.pending)
            self.unrecorded.clear()
            raise
        self.unrecorded.clear()

    async def undelivered(self, tags: Iterable[str]) -> None:
        """A write's bump did not reach Redis: record it for the other instances and
        return once it is sent, or once no instance can still serve what it made stale."""
        tags = set(tags)
        self._failed_send()
        try:
            async with asyncio.timeout(self.trust_seconds):
                await self._record(tags)
        except FAILURES as exc:
            self.unrecorded |= tags
            log.warning(
                "cache_invalidation_not_recorded",
                tags=sorted(tags),
                error=str(exc) or type(exc).__name__,
            )
        self._gauges()
        # From the row's commit: a check that began after it has seen it.
        deadline = time.monotonic() + self.trust_seconds
        while tags & self.store.pending and time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if tags & self.store.pending:
            # Past every other process's trust window: none serves the older answer.
            await asyncio.sleep(0.05)

    async def _record(self, tags: set[str]) -> None:
        if tags:
            engine, _ = self._engines()
            await record_invalidations(engine, tags)

    def _failed_send(self) -> None:
        if self.metrics is not None:
            self.metrics.cache_invalidation_failures.inc()

    def _gauges(self) -> None:
        if self.metrics is not None:
            self.metrics.cache_invalidations_pending.set(len(self.store.pending))
            self.metrics.cache_untrusted.set(
                0 if time.monotonic() < self.store.trusted_until else 1
            )

    def _state(self, *, failing: bool, error: str = "") -> None:
        if failing and not self.failing:
            log.warning(
                "cache_untrusted_until_checked", error=error, within_seconds=self.trust_seconds
            )
        elif self.failing and not failing:
            log.info("cache_trusted_again")
        self.failing = failing
