"""The PostgreSQL pool serves waiting requests in arrival order (data/pool.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from data.db import Database, PoolSettings, make_engine
from data.errors import Unavailable
from data.pool import FairAsyncPool
from tests.conftest import POSTGRES_URL, require_postgres


@pytest.fixture
async def small_pool(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEngine]:
    await require_postgres()
    size, overflow, timeout, *fair = getattr(request, "param", (1, 1, 5.0))
    engine = make_engine(
        POSTGRES_URL,
        PoolSettings(
            size=size, max_overflow=overflow, timeout=timeout, pre_ping=False, fair=all(fair)
        ),
    )
    yield engine
    await engine.dispose()


async def _use(
    engine: AsyncEngine, name: str, arrived: list[str], served: list[str], hold: float
) -> None:
    arrived.append(name)
    async with engine.connect() as connection:
        served.append(name)
        await connection.exec_driver_sql("SELECT 1")
        await asyncio.sleep(hold)


@pytest.mark.parametrize("small_pool", [(1, 0, 5.0)], indirect=True)
async def test_a_request_arriving_as_a_connection_returns_waits_behind_earlier_ones(
    small_pool: AsyncEngine,
) -> None:
    """SQLAlchemy's own asyncio queue hands a returned connection to whoever asks next,
    ahead of the requests already waiting (who then queue again at the back): under a
    steady stream a waiter could wait for seconds. Here the newcomer comes second."""
    arrived: list[str] = []
    served: list[str] = []
    newcomers: list[asyncio.Task[None]] = []

    async def use(name: str) -> None:
        arrived.append(name)
        async with small_pool.connect() as connection:
            served.append(name)
            await connection.exec_driver_sql("SELECT 1")
            await asyncio.sleep(0.02)

    def arrives_as_first_leaves(*_: object) -> None:
        # "checkin" fires just before the connection goes back into the pool's queue
        if not newcomers:
            newcomers.append(asyncio.get_running_loop().create_task(use("newcomer")))

    event.listen(small_pool.sync_engine.pool, "checkin", arrives_as_first_leaves)
    first = asyncio.create_task(use("first"))
    while "first" not in served:
        await asyncio.sleep(0.001)
    waiter = asyncio.create_task(use("waiter"))
    await asyncio.gather(first, waiter)
    await asyncio.gather(*newcomers)
    assert arrived == ["first", "waiter", "newcomer"]
    assert served == arrived


@pytest.mark.parametrize(
    "small_pool", [(1, 0, 0.2, True), (1, 0, 0.2, False)], ids=["tuned", "stock"], indirect=True
)
async def test_a_wait_beyond_the_pool_timeout_is_sqlalchemys_timeout_and_frees_no_slot(
    small_pool: AsyncEngine,
) -> None:
    async with small_pool.connect() as held:
        await held.exec_driver_sql("SELECT 1")
        with pytest.raises(exc.TimeoutError, match="QueuePool limit of size 1 overflow 0"):
            async with small_pool.connect():
                pass
    # The slot the timed-out waiter never had is not given back twice: still one at a time.
    async with small_pool.connect() as first:
        await first.exec_driver_sql("SELECT 1")
        with pytest.raises(exc.TimeoutError):
            async with small_pool.connect():
                pass


@pytest.mark.parametrize(
    "small_pool", [(2, 1, 2.0, True), (2, 1, 2.0, False)], ids=["tuned", "stock"], indirect=True
)
async def test_failures_give_their_connection_back(small_pool: AsyncEngine) -> None:
    async def failing() -> None:
        async with small_pool.connect() as connection:
            await connection.exec_driver_sql("SELECT 1/0")

    results = await asyncio.gather(*(failing() for _ in range(12)), return_exceptions=True)
    assert all(isinstance(r, exc.DBAPIError) for r in results)
    # Every slot is free again: the pool's three connections can be held at once, at once.
    async with small_pool.connect() as a, small_pool.connect() as b:
        async with asyncio.timeout(1):
            async with small_pool.connect() as c:
                for connection in (a, b, c):
                    assert (await connection.exec_driver_sql("SELECT 1")).scalar() == 1


def _engine(**pool: Any) -> AsyncEngine:
    return make_engine(POSTGRES_URL, PoolSettings(**pool))


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())


async def test_a_connection_used_moments_ago_is_not_pinged_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncpg's pre-ping is three round trips; back-to-back requests skip it."""
    await require_postgres()
    engine = _engine(size=2, max_overflow=0, ping_after_idle=60.0)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(
        engine.dialect, "do_ping", lambda connection: pings.append(1) or real_ping(connection)
    )
    try:
        pids = {await _backend_pid(engine) for _ in range(20)}
        assert len(pids) == 1  # one connection, reused
        assert pings == []
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_so_a_dead_one_is_replaced_unseen() -> None:
    await require_postgres()
    engine = _engine(size=1, max_overflow=0, ping_after_idle=0.2)
    killer = create_async_engine(POSTGRES_URL)
    try:
        pid = await _backend_pid(engine)
        async with killer.connect() as connection:
            await connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.3)  # idle longer than ping_after_idle: pinged, found dead
        assert await _backend_pid(engine) != pid
    finally:
        await killer.dispose()
        await engine.dispose()


@pytest.mark.parametrize("fair", [True, False], ids=["tuned", "stock"])
async def test_read_value_is_one_statement_on_a_pooled_connection_and_counted(
    fair: bool,
) -> None:
    """``Database.read_value`` (the compiled reads') bypasses SQLAlchemy's Connection but
    not the pool, and the statement listeners still hear of every statement; the same
    over SQLAlchemy's own pool (``DB_POOL=stock``)."""
    await require_postgres()
    db = Database(_engine(size=1, max_overflow=0, ping_after_idle=60.0, fair=fair))
    assert isinstance(db.engine.pool, FairAsyncPool) is fair
    heard: list[str] = []
    event.listen(
        db.engine.sync_engine,
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: heard.append(statement),
    )
    try:
        pid = await _backend_pid(db.engine)
        assert await db.read_value("SELECT pg_backend_pid()", ()) == pid  # the pooled one
        assert await db.read_value("SELECT $1::int + $2::int", (2, 3)) == 5
        assert await db.read_value("SELECT 1 WHERE false", ()) is None
        assert heard[-3:] == [
            "SELECT pg_backend_pid()",
            "SELECT $1::int + $2::int",
            "SELECT 1 WHERE false",
        ]
        # No transaction was left open on the connection: the pool has it back, idle.
        async with db.engine.connect() as connection:
            state = (
                await connection.exec_driver_sql(
                    f"SELECT state FROM pg_stat_activity WHERE pid = {pid}"
                )
            ).scalar_one()
            assert state == "active"  # this very statement, on the same connection
    finally:
        await db.engine.dispose()


async def test_read_value_errors_keep_a_sound_connection_and_drop_a_dead_one() -> None:
    await require_postgres()
    db = Database(_engine(size=1, max_overflow=0, ping_after_idle=60.0))
    killer = create_async_engine(POSTGRES_URL)
    try:
        pid = await db.read_value("SELECT pg_backend_pid()", ())
        with pytest.raises(asyncpg.DivisionByZeroError):
            await db.read_value("SELECT 1/0", ())
        assert await db.read_value("SELECT pg_backend_pid()", ()) == pid  # kept: sound
        async with killer.connect() as connection:
            await connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        await asyncio.sleep(0.1)
        with pytest.raises(Unavailable):  # a connection-level failure: an outage (503)
            await db.read_value("SELECT 1", ())  # not pinged (used moments ago): it fails
        assert await db.read_value("SELECT pg_backend_pid()", ()) not in (None, pid)
    finally:
        await killer.dispose()
        await db.engine.dispose()


async def test_read_value_leases_pooled_connections_within_the_same_slots() -> None:
    """After the first (which opens it), reads lease the pool's connection without a
    SQLAlchemy checkout; they share the pool's slots with sessions: 40 concurrent reads
    on a pool of 2 use 2 connections, and a read waits while a session holds the last."""
    await require_postgres()
    db = Database(_engine(size=2, max_overflow=0, ping_after_idle=60.0))
    checkouts: list[int] = []
    event.listen(db.engine.sync_engine.pool, "checkout", lambda *_: checkouts.append(1))
    try:
        pids = await asyncio.gather(
            *(db.read_value("SELECT pg_backend_pid()", ()) for _ in range(40))
        )
        assert len(set(pids)) <= 2
        opened = len(checkouts)
        assert opened <= 2  # only while the pool was filling
        more = await asyncio.gather(
            *(db.read_value("SELECT pg_backend_pid()", ()) for _ in range(40))
        )
        assert len(set(pids) | set(more)) <= 2
        assert len(checkouts) == opened  # leased, not checked out
        assert db.engine.sync_engine.pool.checkedout() == 0

        async with db.engine.connect() as one, db.engine.connect() as two:
            await one.exec_driver_sql("SELECT 1")
            await two.exec_driver_sql("SELECT 1")
            waiting = asyncio.ensure_future(db.read_value("SELECT 7", ()))
            await asyncio.sleep(0.1)
            assert not waiting.done()  # both connections are taken: the read waits
        assert await waiting == 7
    finally:
        await db.engine.dispose()


async def test_fifo_gate_serves_in_order_times_out_and_passes_on_a_cancelled_slot() -> None:
    from data.pool import FifoGate

    gate = FifoGate(1, timeout=0.3)
    await gate.acquire()
    order: list[int] = []

    async def wait(n: int) -> None:
        await gate.acquire()
        order.append(n)

    waiting = [asyncio.ensure_future(wait(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    waiting[1].cancel()  # gives up its place: the slot skips it
    gate.release()  # to 0
    await asyncio.sleep(0.01)
    gate.release()  # to 2 (1 was cancelled)
    await asyncio.sleep(0.01)
    assert order == [0, 2]
    assert waiting[1].cancelled()

    # Nobody releases: a waiter gets TimeoutError after the gate's timeout, not before.
    began = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await gate.acquire()
    assert asyncio.get_running_loop().time() - began >= 0.29
    gate.release()
    assert not gate.locked()
    await gate.acquire()  # the slot is there again
    assert gate.locked()
