"""Engines and sessions.

One ``Database`` per process, created in the app's lifespan and disposed on shutdown.
Sessions come from ``read()`` and ``write()``: each call opens its own session, so
concurrently resolved GraphQL fields never share one (an ``AsyncSession`` runs one
statement at a time). ``write()`` commits on success and rolls back on error; services
only flush.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import await_only, greenlet_spawn

from data.changes import CommitListener, take_changes
from data.outages import DATABASE, unavailable_from
from data.pool import FairAsyncPool

log = structlog.get_logger("gateway.db")


@dataclass(frozen=True)
class PoolSettings:
    size: int = 10
    max_overflow: int = 0
    timeout: float = 10.0
    recycle: int = 1800
    pre_ping: bool = True
    ping_after_idle: float = 2.0  # a connection used more recently is not pre-pinged
    statement_timeout_ms: int = 0
    connect_timeout: float = 5.0  # PostgreSQL: a connection attempt that takes longer fails
    command_timeout: float | None = None  # PostgreSQL: a client-side limit per statement


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _connecting_is_an_outage(context: Any) -> None:
    """A failure to open a connection (refused, not accepting connections, starting up,
    a bad password) marks the error a disconnect, so ``data.outages`` knows it for one
    whatever its SQLSTATE."""
    if context.connection is None and context.sqlalchemy_exception is not None:
        context.is_disconnect = True


def make_engine(url: str, pool: PoolSettings | None = None) -> AsyncEngine:
    """An async engine for SQLite (aiosqlite) or PostgreSQL (asyncpg)."""
    pool = pool or PoolSettings()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        return engine
    # asyncpg's own limits: a frozen server (or a dropped network) fails a statement or
    # a connection attempt within these, as an outage, instead of hanging the request.
    connect_args: dict[str, Any] = {"timeout": pool.connect_timeout}
    if pool.command_timeout:
        connect_args["command_timeout"] = pool.command_timeout
    if pool.statement_timeout_ms:
        connect_args["server_settings"] = {"statement_timeout": str(pool.statement_timeout_ms)}
    engine = create_async_engine(
        url,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.timeout,
        pool_recycle=pool.recycle,
        pool_pre_ping=pool.pre_ping,
        poolclass=FairAsyncPool,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "handle_error", _connecting_is_an_outage)
    assert isinstance(engine.pool, FairAsyncPool)
    engine.pool.ping_after_idle = pool.ping_after_idle
    return engine


def _for_reads(engine: AsyncEngine) -> AsyncEngine:
    """Read sessions on PostgreSQL run without BEGIN and ROLLBACK (autocommit): at READ
    COMMITTED every statement takes its own snapshot inside a transaction or not, and a
    session per loader batch paid two extra round trips for it (issue 9)."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def _outage(exc: Exception) -> Exception:
    """``exc``, or the ``Unavailable`` it stands for when it is a connection-level failure."""
    return unavailable_from(exc, transport=True) or exc


def _back() -> None:
    if DATABASE.down:
        DATABASE.recovered()


def _broke(exc: BaseException, driver: asyncpg.Connection) -> bool:
    """Whether a statement's failure left its connection unfit to pool again: anything but
    an error PostgreSQL answered on a connection that is still open."""
    return not isinstance(exc, asyncpg.PostgresError) or driver.is_closed()


class Database:
    """The engine (and optional read replica) with the two ways to get a session."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self._write_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = _for_reads(self.read_engine)
        self._read_sessions = async_sessionmaker(self._reads, expire_on_commit=False)
        self._commit_listeners: list[CommitListener] = []

    def on_commit(self, listener: CommitListener) -> None:
        """Calls ``listener(changes)`` after each write that recorded changes commits."""
        self._commit_listeners.append(listener)

    @classmethod
    def from_url(
        cls, url: str, read_url: str | None = None, pool: PoolSettings | None = None
    ) -> Database:
        engine = make_engine(url, pool)
        read_engine = make_engine(read_url, pool) if read_url else None
        return cls(engine, read_engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for read-only work (the replica when one is configured)."""
        try:
            async with self._read_sessions() as session:
                yield session
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()

    @asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for one read statement, without an ORM session around it."""
        try:
            async with self._reads.connect() as connection:
                yield connection
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()

    async def read_value(self, sql: str, params: Sequence[Any]) -> Any:
        """The first column of the first row of one read statement (``None`` if no row).

        On PostgreSQL it runs on the pooled asyncpg connection itself: no SQLAlchemy
        ``Connection`` and no transaction (reads run in autocommit anyway), asyncpg's own
        prepared statement, one round trip; an idle connection is leased from the pool
        without SQLAlchemy's checkout (``FairAsyncPool.lease``). A compiled read's
        statement is all the work of its request, so the layers around it were a third of
        the request (issue 9).
        The engine's ``before_cursor_execute`` listeners (the statement counters) hear of
        it as of any statement. A connection that failed under it is not pooled again.
        """
        if self._reads.dialect.name != "postgresql":
            async with self.read_connection() as connection:
                return (await connection.exec_driver_sql(sql, tuple(params))).scalar()
        try:
            value = await self._read_value(sql, params)
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()
        return value

    async def _read_value(self, sql: str, params: Sequence[Any]) -> Any:
        engine = self._reads.sync_engine
        pool = engine.pool
        record = await pool.lease() if isinstance(pool, FairAsyncPool) else None
        if record is None:
            return await greenlet_spawn(self._read_value_pooled, sql, params)
        driver = record.dbapi_connection.driver_connection  # type: ignore[union-attr]
        failed: BaseException | None = None
        try:
            engine.dispatch.before_cursor_execute(None, None, sql, params, None, False)
            return await driver.fetchval(sql, *params)
        except BaseException as exc:
            if _broke(exc, driver):
                failed = exc
            raise
        finally:
            await pool.end_lease(record, failed)

    def _read_value_pooled(self, sql: str, params: Sequence[Any]) -> Any:
        # In one greenlet: the checkout, the statement and the return to the pool (each
        # greenlet_spawn costs about as much as the statement's Python side).
        engine = self._reads.sync_engine
        pooled = engine.raw_connection()
        driver = pooled.driver_connection
        try:
            engine.dispatch.before_cursor_execute(None, None, sql, params, None, False)
            return await_only(driver.fetchval(sql, *params))
        except BaseException as exc:
            if _broke(exc, driver):
                pooled.invalidate()
            raise
        finally:
            pooled.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed when the block succeeds, else rolled back.

        After a commit, the changes the services recorded (``data.changes``) go to the
        commit listeners before this returns; after a rollback they are dropped.
        """
        try:
            async with self._write_sessions() as session:
                try:
                    yield session
                except BaseException as exc:
                    # Some refusals must leave a trace (a reused refresh token revokes its
                    # login); those errors say so, everything else rolls back.
                    if getattr(exc, "commit_changes", False):
                        await session.commit()
                        await self._announce(session)
                    else:
                        take_changes(session)
                        await self._rollback(session, exc)
                    raise
                await session.commit()
                await self._announce(session)
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()

    @staticmethod
    async def _rollback(session: AsyncSession, exc: BaseException) -> None:
        try:
            await session.rollback()
        except Exception:
            # A connection lost mid-transaction cannot roll back; the server already has.
            if not (isinstance(exc, Exception) and _outage(exc) is not exc):
                raise

    async def _announce(self, session: AsyncSession) -> None:
        changes = take_changes(session)
        if not changes:
            return
        for listener in self._commit_listeners:
            # The write has committed: a listener that fails (Redis down) is logged, and
            # must itself make sure nothing stale is served (the cache bypasses then).
            try:
                await listener(changes)
            except Exception:
                log.exception("commit_listener_failed",
                              listener=getattr(listener, "__qualname__", "?"))

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
