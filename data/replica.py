"""When a read may go to the replica: never to data older than an acknowledged write.

A streaming replica applies the primary's WAL some time after the primary committed it
(milliseconds usually; seconds or more under load, or by design with
``recovery_min_apply_delay``). So every write, once committed, records the primary's
WAL position (``pg_current_wal_insert_lsn()``, read after the commit: it is at or past
the end of the commit record) as the *floor*, before the write returns and before its
cache invalidation is sent. A read goes to the replica only when the replica's
``pg_last_wal_replay_lsn()`` has reached the floor; otherwise, or when the replica is
unreachable, it goes to the primary.

The floor is known in one of two ways:

- with Redis: a key every writer raises to its LSN (``gateway.replica_floor``), read by a
  read that wants the replica. The read is sent after the read began (and so after the
  response cache's lookup), and a write raises the key before it returns: a read never
  misses a write acknowledged before it. Reads in flight at once share one ``GET``.
  A missing key (Redis restarted empty) is set again from the primary's current LSN;
- without Redis: the primary's current LSN, asked per read (one short statement on the
  primary, which still spares it the read itself): other workers and instances write
  too, and only a shared place hears of their writes.

This process's own newest commit is kept as well: a replica known to be behind it is not
asked for at all.

The replica's replay LSN is asked at most every ``poll_seconds``, and only while reads
find it behind the floor, in the background: a read never waits for it. A replica that
fails (cannot connect, shut down) is left alone for ``retry_seconds``; reads go to the
primary meanwhile, and a read that the replica failed under is run again on the primary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger("gateway.db")

# SQLSTATE classes and codes that mean "this server cannot answer now", not "this
# statement is wrong": connection exceptions, shutdowns, starting up.
_GONE_STATES = ("08", "57P01", "57P02", "57P03")
# A standby cancels a query that conflicts with WAL it must apply: run it on the primary.
_CONFLICT_STATE = "40001"


class ReplicaBehind(Exception):
    """A new connection reached a replica behind what it had already replayed."""


@dataclass(frozen=True)
class ReplicaSettings:
    poll_seconds: float = 0.01
    retry_seconds: float = 1.0
    timeout: float = 1.0  # for a probe of the replica and a floor lookup on the primary


@dataclass(frozen=True)
class ReplicaState:
    """What a probe of the replica found."""

    replay_lsn: int
    lag_seconds: float


class FloorBoard(Protocol):
    """Where writers of every process leave the newest LSN they committed."""

    async def raise_to(self, lsn: int) -> None: ...

    async def newest(self) -> int | None: ...  # None: the board lost it (Redis restarted)

    async def close(self) -> None: ...


def parse_lsn(text: str | None) -> int:
    """``'16/B374D848'`` as a number (``None``, as on a replica before any replay: 0)."""
    if not text:
        return 0
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def _sqlstate(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def replica_failure(exc: BaseException) -> str | None:
    """``'gone'`` when ``exc`` says the server cannot answer, ``'conflict'`` when a standby
    cancelled the statement for WAL it had to apply, else ``None`` (the statement's own
    error, which the primary would give as well)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ReplicaBehind):
            return "conflict"
        state = _sqlstate(current)
        if state:
            if state.startswith(_GONE_STATES):
                return "gone"
            if state == _CONFLICT_STATE:
                return "conflict"
        if isinstance(current, (OSError, TimeoutError)):
            return "gone"
        if getattr(current, "connection_invalidated", False):
            return "gone"
        name = type(current).__name__
        if name in ("ConnectionDoesNotExistError", "InterfaceError") and (
            "closed" in str(current) or name == "ConnectionDoesNotExistError"
        ):
            return "gone"
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return None


class ReplicaRouter:
    """Decides per read: the replica (caught up with every acknowledged write) or the
    primary; keeps the replica's state for the metrics."""

    def __init__(
        self,
        probe: Callable[[], Awaitable[ReplicaState]],
        primary_lsn: Callable[[], Awaitable[int]],
        settings: ReplicaSettings | None = None,
    ) -> None:
        self.settings = settings or ReplicaSettings()
        self._probe = probe
        self._primary_lsn = primary_lsn
        self.board: FloorBoard | None = None
        self.floor_from_primary = False  # no board: ask the primary
        self.local_lsn = 0  # the newest commit of this process
        self.known_lsn = 0  # the newest commit this process has heard of
        self.replay_lsn = 0
        self.lag_seconds = 0.0
        self.up = False
        self.probed_at = float("-inf")
        self.retry_at = 0.0
        self.unpublished = 0  # an LSN the board has not taken yet (retried)
        self.unknown_commit = False  # a commit whose LSN could not be read
        self.on_route: Callable[[str, str], None] | None = None
        self._probing: asyncio.Task[None] | None = None
        self._publishing: asyncio.Task[None] | None = None
        self._recovering: asyncio.Task[None] | None = None
        self._fetching: asyncio.Task[None] | None = None
        self._queued: asyncio.Future[int] | None = None

    # Writes.

    async def committed(self, lsn: int) -> None:
        """A write committed at ``lsn``: no read goes to a replica behind it from now on."""
        self.local_lsn = max(self.local_lsn, lsn)
        self.known_lsn = max(self.known_lsn, lsn)
        if self.board is None:
            return
        self.unpublished = max(self.unpublished, lsn)
        if self._publishing is None:
            await self._publish()

    def commit_unknown(self) -> None:
        """A write committed but its LSN could not be read: no replica reads in this
        process until the primary's position is known again (asked in the background)."""
        self.unknown_commit = True
        if self._recovering is None:
            self._recovering = asyncio.ensure_future(self._recover_floor())

    async def _recover_floor(self) -> None:
        try:
            while self.unknown_commit:
                try:
                    lsn = await asyncio.wait_for(self._primary_lsn(), self.settings.timeout)
                except Exception:  # noqa: S112 - the primary is still away: try again
                    await asyncio.sleep(self.settings.retry_seconds)
                    continue
                self.unknown_commit = False
                await self.committed(lsn)
        finally:
            self._recovering = None

    async def _publish(self) -> None:
        lsn = self.unpublished
        try:
            assert self.board is not None
            await self.board.raise_to(lsn)
        except Exception as exc:
            # Other processes cannot hear of this write until Redis takes it (the cache
            # invalidation it goes with fails alike): retried in the background.
            log.warning("replica_floor_deferred", error=str(exc) or type(exc).__name__)
            if self._publishing is None:
                self._publishing = asyncio.ensure_future(self._republish())
            return
        if self.unpublished == lsn:
            self.unpublished = 0

    async def _republish(self) -> None:
        try:
            while self.unpublished and self.board is not None:
                await asyncio.sleep(self.settings.retry_seconds)
                lsn = self.unpublished
                try:
                    await self.board.raise_to(lsn)
                except Exception:  # noqa: S112 - still down: try again
                    continue
                if self.unpublished == lsn:
                    self.unpublished = 0
        finally:
            self._publishing = None

    # Reads.

    async def use_replica(self) -> bool:
        """Whether the next read may go to the replica."""
        if not self.up:
            self._probe_soon(self.retry_at)
            return self._route(False, "replica_down")
        if self.replay_lsn >= self.local_lsn and not self.unknown_commit:
            try:
                floor = await self._floor()
            except Exception as exc:
                log.debug("replica_floor_unknown", error=str(exc) or type(exc).__name__)
                return self._route(False, "floor_unknown")
            if self.replay_lsn >= floor:
                return self._route(True, "caught_up")
        self._probe_soon(self.probed_at + self.settings.poll_seconds)
        return self._route(False, "lagging")

    def _route(self, replica: bool, reason: str) -> bool:
        if self.on_route is not None:
            self.on_route("replica" if replica else "primary", reason)
        return replica

    def failed(self, exc: BaseException) -> None:
        """The replica could not answer: reads go to the primary until a probe succeeds."""
        if self.up:
            log.warning(
                "replica_unavailable",
                error=type(exc).__name__,
                retry_seconds=self.settings.retry_seconds,
            )
        self.up = False
        self.replay_lsn = 0
        self.retry_at = time.monotonic() + self.settings.retry_seconds

    def behind(self, replay_lsn: int) -> None:
        """A connection found the replica behind what was last probed (it restarted)."""
        self.replay_lsn = min(self.replay_lsn, replay_lsn)

    async def _floor(self) -> int:
        if self.board is None and not self.floor_from_primary:
            return self.local_lsn
        # A lookup that starts now: one in flight started before this read, so it could
        # have missed a write acknowledged since; this read waits for the next one, which
        # every read arriving meanwhile shares.
        waiter = self._queued
        if waiter is None:
            waiter = self._queued = asyncio.get_running_loop().create_future()
            waiter.add_done_callback(_retrieve)
            if self._fetching is None:
                self._start_fetch()
        return await asyncio.shield(waiter)

    def _start_fetch(self) -> None:
        waiter, self._queued = self._queued, None
        assert waiter is not None
        self._fetching = asyncio.ensure_future(self._fetch(waiter))

    async def _fetch(self, waiter: asyncio.Future[int]) -> None:
        try:
            lsn = await self._newest()
        except Exception as exc:
            if not waiter.done():
                waiter.set_exception(exc)
        else:
            self.known_lsn = max(self.known_lsn, lsn)
            if not waiter.done():
                waiter.set_result(max(lsn, self.local_lsn))
        finally:
            self._fetching = None
            if self._queued is not None:
                self._start_fetch()

    async def _newest(self) -> int:
        if self.board is None:
            return await asyncio.wait_for(self._primary_lsn(), self.settings.timeout)
        lsn = await self.board.newest()
        if lsn is None:
            # The board lost its value: the primary's position now is at or past every
            # commit acknowledged so far.
            lsn = await asyncio.wait_for(self._primary_lsn(), self.settings.timeout)
            await self.board.raise_to(lsn)
        return lsn

    # The replica's state.

    def _probe_soon(self, not_before: float) -> None:
        if self._probing is None and time.monotonic() >= not_before:
            self._probing = asyncio.ensure_future(self._run_probe())

    async def probe(self) -> None:
        """Asks the replica how far it has replayed (for the metrics: at once)."""
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._run_probe())
        await asyncio.shield(self._probing)

    async def _run_probe(self) -> None:
        self.probed_at = time.monotonic()
        try:
            state = await asyncio.wait_for(self._probe(), self.settings.timeout)
        except Exception as exc:
            self.failed(exc)
        else:
            if not self.up:
                log.info("replica_available", replay_lsn=state.replay_lsn)
            self.up = True
            self.replay_lsn = state.replay_lsn
            self.lag_seconds = state.lag_seconds
        finally:
            self._probing = None

    @property
    def lag_bytes(self) -> int:
        """WAL between the newest commit this process has heard of and the replica."""
        return max(self.known_lsn - self.replay_lsn, 0) if self.up else 0

    async def close(self) -> None:
        for task in (self._probing, self._publishing, self._fetching, self._recovering):
            if task is not None:
                task.cancel()
        if self.board is not None:
            await self.board.close()


def _retrieve(future: asyncio.Future[Any]) -> None:
    # Every read that wanted this lookup may have been cancelled: nobody else looks.
    if not future.cancelled():
        future.exception()
