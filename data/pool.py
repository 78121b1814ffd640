"""A connection pool that hands out connections first come, first served.

SQLAlchemy's asyncio pool keeps idle connections in an ``asyncio.Queue`` and takes one
with ``get_nowait`` whenever one is there: a request that arrives just as a connection
comes back takes it ahead of every request already waiting, and a waiter that finds the
queue empty again goes back to the end of the line. Under a burst wider than the pool
(32 connections on a pool of 10 with 10 overflow) a few requests waited for seconds
while others were served in milliseconds: the benchmark's REST p99 of 4.6 s.

``FairAsyncPool`` puts a FIFO gate in front: one slot per connection the pool may have
(``pool_size + max_overflow``), taken before a connection is, given back when it
returns. With a slot in hand the pool always has a connection to give, so nobody
overtakes anybody, and the wait still ends with SQLAlchemy's own ``TimeoutError``.

``lease()`` hands a compiled read the driver connection of an idle pooled connection
without SQLAlchemy's checkout (a ``_ConnectionFairy``, its events and its reset on
return, run in a greenlet): the same slots, the same connections, but about a third of
the cost of the read's one statement. Whatever the checkout would have had to
do first (a pre-ping, a recycle, a reconnect, a connection not opened yet) goes the usual
way instead.

It also pre-pings only connections that sat idle: SQLAlchemy's pre-ping on asyncpg is
three round trips (BEGIN, ``;``, ROLLBACK) on every checkout, more than the one statement
a compiled read needs. A connection that came back less than ``ping_after_idle`` seconds
ago was just used and is handed out unpinged (SQLAlchemy's own "fresh" flag); a
longer-idle one is pinged as before, so a restarted database is still survived.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from greenlet import getcurrent
from sqlalchemy import exc
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry
from sqlalchemy.util import await_only, greenlet_spawn
from sqlalchemy.util.queue import Empty

from data.deadlines import Deadlines
from data.running import running_loop

if TYPE_CHECKING:
    from sqlalchemy.pool.base import _ConnectionRecord

_RETURNED_AT = "gateway.returned_at"


class FifoGate:
    """A counting semaphore that serves waiters first come, first served, each within
    ``timeout`` (``TimeoutError``), all their deadlines watched by one timer
    (``data.deadlines``): under load most checkouts wait, and an ``asyncio.timeout``
    around each wait cost more than the wait's own bookkeeping. A released slot goes
    straight to the next waiter.
    """

    def __init__(self, slots: int, timeout: float) -> None:
        self.free = slots
        self.timeout = timeout
        self.waiters: Deadlines[asyncio.Future[None]] = Deadlines(timeout, _time_out)

    def locked(self) -> bool:
        return self.free <= 0

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        future: asyncio.Future[None] = running_loop().create_future()
        self.waiters.add(future)
        try:
            await future
        except asyncio.CancelledError:
            self.waiters.discard(future)
            if future.done() and not future.cancelled() and future.exception() is None:
                self.release()  # handed a slot just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while (future := self.waiters.pop_oldest()) is not None:
            if not future.done():
                future.set_result(None)  # the slot changes hands
                return
        self.free += 1


def _time_out(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class FairAsyncPool(AsyncAdaptedQueuePool):
    """``AsyncAdaptedQueuePool`` with a first-come, first-served wait for connections."""

    #: seconds a returned connection counts as just used (no pre-ping); set by make_engine
    ping_after_idle: float = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate: FifoGate | None = None
        self._gate_loop: asyncio.AbstractEventLoop | None = None
        self._taking: set[Any] = set()  # greenlets inside _do_get (it may call itself)

    def _slots(self) -> FifoGate | None:
        if self._max_overflow < 0:
            return None  # unbounded: nobody ever waits
        loop = running_loop()
        if self._gate is None or self._gate_loop is not loop:
            self._gate = FifoGate(self.size() + self._max_overflow, self._timeout)
            self._gate_loop = loop
        return self._gate

    def recreate(self) -> FairAsyncPool:
        pool = super().recreate()
        assert isinstance(pool, FairAsyncPool)
        pool.ping_after_idle = self.ping_after_idle
        return pool

    def _do_get(self) -> ConnectionPoolEntry:
        me = getcurrent()
        gate = None if me in self._taking else self._slots()
        if gate is None:  # unbounded, or _do_get calling itself with the slot in hand
            return super()._do_get()
        try:
            await_only(gate.acquire())
        except TimeoutError:
            raise self._timed_out() from None
        self._taking.add(me)
        try:
            record = super()._do_get()
        except BaseException:
            gate.release()  # no connection: nothing will come back for this slot
            raise
        finally:
            self._taking.discard(me)
        if self._just_used(record):
            record.fresh = True  # type: ignore[attr-defined]  # SQLAlchemy skips its pre-ping
        return record

    def _just_used(self, record: ConnectionPoolEntry) -> bool:
        """Back less than ``ping_after_idle`` seconds ago: no need to ping it."""
        returned = record.info.get(_RETURNED_AT)
        return returned is not None and time.monotonic() - returned < self.ping_after_idle

    def _timed_out(self) -> exc.TimeoutError:
        """SQLAlchemy's own error for a checkout that waited too long."""
        return exc.TimeoutError(
            f"QueuePool limit of size {self.size()} overflow {self._max_overflow} "
            f"reached, connection timed out, timeout {self._timeout:0.2f}",
            code="3o7r",
        )

    async def lease(self) -> ConnectionPoolEntry | None:
        """An idle pooled connection ready for one statement as it is, with its slot;
        ``None`` (and no slot) when the usual checkout must run. Give it back with
        ``end_lease``."""
        gate = self._slots()
        if gate is None:
            return None
        try:
            await gate.acquire()
        except TimeoutError:
            raise self._timed_out() from None
        try:
            record: _ConnectionRecord = self._pool.get_nowait()  # type: ignore[assignment]  # the queue holds SQLAlchemy's _ConnectionRecord, whose times are read below
        except Empty:  # fewer connections than slots yet: the checkout opens one
            gate.release()
            return None
        if (
            record.dbapi_connection is None
            or not self._just_used(record)
            or (self._recycle > -1 and time.time() - record.starttime > self._recycle)
            or self._invalidate_time > record.starttime
            or record._soft_invalidate_time > record.starttime
        ):
            # A ping, a recycle or a reconnect first: the checkout knows how.
            self._pool.put_nowait(record)
            gate.release()
            return None
        return record

    async def end_lease(
        self,
        record: ConnectionPoolEntry,
        failed: BaseException | None = None,
    ) -> None:
        """Back to the pool; a connection that ``failed`` under the lease is closed first
        (the next checkout of its record reconnects)."""
        try:
            if failed is not None:
                await greenlet_spawn(record.invalidate, failed)
            else:
                record.info[_RETURNED_AT] = time.monotonic()
        finally:
            self._pool.put_nowait(record)
            assert self._gate is not None
            self._gate.release()

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if record.dbapi_connection is not None:
            record.info[_RETURNED_AT] = time.monotonic()
        try:
            super()._do_return_conn(record)
        finally:
            if self._gate is not None and self._max_overflow >= 0:
                self._gate.release()
