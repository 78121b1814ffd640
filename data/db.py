"""Engines and sessions.

One ``Database`` per process, created in the app's lifespan and disposed on shutdown.
Sessions come from ``read()`` and ``write()``: each call opens its own session, so
concurrently resolved GraphQL fields never share one (an ``AsyncSession`` runs one
statement at a time). ``write()`` commits on success and rolls back on error; services
only flush.

With a read replica (``DATABASE_READ_URL``) each read goes to it only when it has replayed
every write acknowledged so far, else to the primary (``data.replica``).
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
from sqlalchemy.orm import Session
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_only, greenlet_spawn

from data.changes import CommitListener, take_changes
from data.outages import DATABASE, unavailable_from
from data.pool import FairAsyncPool
from data.replica import (
    ReplicaBehind,
    ReplicaRouter,
    ReplicaSettings,
    ReplicaState,
    parse_lsn,
    replica_failure,
)

log = structlog.get_logger("gateway.db")


@dataclass(frozen=True)
class PoolSettings:
    size: int = 10
    max_overflow: int = 0
    timeout: float = 10.0
    recycle: int = 1800
    pre_ping: bool = True
    ping_after_idle: float = 2.0  # a connection used more recently is not pre-pinged
    fair: bool = True  # FairAsyncPool (data/pool.py); False: SQLAlchemy's own pool
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
        poolclass=FairAsyncPool if pool.fair else AsyncAdaptedQueuePool,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "handle_error", _connecting_is_an_outage)
    if isinstance(engine.pool, FairAsyncPool):
        engine.pool.ping_after_idle = pool.ping_after_idle
    return engine


def _for_reads(engine: AsyncEngine) -> AsyncEngine:
    """Read sessions on PostgreSQL run without BEGIN and ROLLBACK (autocommit): at READ
    COMMITTED every statement takes its own snapshot inside a transaction or not, and a
    session per loader batch paid two extra round trips for it."""
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


_FALLBACK = "gateway.replica_fallback"  # Session.info: (router, the primary's read engine)
_PROBE = (
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "CASE WHEN pg_last_wal_receive_lsn() IS NULL "
    "OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 "
    "ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END::float8"
)
_PRIMARY_LSN = "SELECT pg_current_wal_insert_lsn()::text"


class _ReplicaSession(Session):
    """A read session on the replica that runs a statement again on the primary when the
    replica could not answer it (stopped, unreachable, or a standby's recovery conflict).

    Reads run in autocommit, so nothing but the objects loaded so far is lost by moving:
    the session is closed (they stay usable, detached) and bound to the primary. Only the
    outermost call moves: a relationship load inside it fails it as a whole."""

    _depth = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(super().execute, args, kwargs)

    def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(super().scalar, args, kwargs)

    def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(super().scalars, args, kwargs)

    def _run(self, method: Any, args: Any, kwargs: Any) -> Any:
        self._depth += 1
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            if self._depth > 1 or not self._to_primary(exc):
                raise
        finally:
            self._depth -= 1
        return method(*args, **kwargs)

    def _to_primary(self, exc: BaseException) -> bool:
        fallback = self.info.get(_FALLBACK)
        if fallback is None or self.bind is fallback[1]:
            return False
        kind = replica_failure(exc)
        if kind is None:
            return False
        router, primary = fallback
        if kind == "gone":
            router.failed(exc)
        self.close()
        self.bind = primary
        return True


class Database:
    """The engine (and optional read replica) with the two ways to get a session."""

    def __init__(
        self,
        engine: AsyncEngine,
        read_engine: AsyncEngine | None = None,
        replica: ReplicaSettings | None = None,
    ) -> None:
        self.engine = engine
        self.read_engine = read_engine or engine
        self._write_sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._primary_reads = _for_reads(engine)
        self._primary_sessions = async_sessionmaker(self._primary_reads, expire_on_commit=False)
        self._commit_listeners: list[CommitListener] = []
        # Reads go to the replica only when it has replayed every acknowledged write; a
        # second SQLite URL (the same file, in tests) needs no such care.
        self.replica: ReplicaRouter | None = None
        if self.read_engine is engine:
            self._reads, self._read_sessions = self._primary_reads, self._primary_sessions
            return
        self._reads = _for_reads(self.read_engine)
        if self._reads.dialect.name != "postgresql":
            self._read_sessions = async_sessionmaker(self._reads, expire_on_commit=False)
            return
        self.replica = ReplicaRouter(self._probe_replica, self._primary_lsn, replica)
        self._read_sessions = async_sessionmaker(
            self._reads,
            expire_on_commit=False,
            sync_session_class=_ReplicaSession,
            info={_FALLBACK: (self.replica, self._primary_reads.sync_engine)},
        )
        event.listen(self.read_engine.sync_engine, "connect", self._on_replica_connect)

    def on_commit(self, listener: CommitListener) -> None:
        """Calls ``listener(changes)`` after each write that recorded changes commits."""
        self._commit_listeners.append(listener)

    @classmethod
    def from_url(
        cls,
        url: str,
        read_url: str | None = None,
        pool: PoolSettings | None = None,
        replica: ReplicaSettings | None = None,
    ) -> Database:
        engine = make_engine(url, pool)
        read_engine = make_engine(read_url, pool) if read_url else None
        return cls(engine, read_engine, replica)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for read-only work (the replica when one is configured and has
        replayed every acknowledged write)."""
        try:
            sessions = self._read_sessions
            if self.replica is not None and not await self.replica.use_replica():
                sessions = self._primary_sessions
            async with sessions() as session:
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
            async with self._read_connection() as connection:
                yield connection
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()

    @asynccontextmanager
    async def _read_connection(self) -> AsyncIterator[AsyncConnection]:
        reads = self._reads
        if self.replica is not None:
            if await self.replica.use_replica():
                try:
                    connection = await reads.connect()
                except Exception as exc:
                    if replica_failure(exc) != "gone":
                        raise
                    self.replica.failed(exc)
                else:
                    try:
                        yield connection
                    finally:
                        await connection.close()
                    return
            reads = self._primary_reads
        async with reads.connect() as connection:
            yield connection

    async def read_value(self, sql: str, params: Sequence[Any]) -> Any:
        """The first column of the first row of one read statement (``None`` if no row).

        On PostgreSQL it runs on the pooled asyncpg connection itself: no SQLAlchemy
        ``Connection`` and no transaction (reads run in autocommit anyway), asyncpg's own
        prepared statement, one round trip; an idle connection is leased from the pool
        without SQLAlchemy's checkout (``FairAsyncPool.lease``). A compiled read's
        statement is all the work of its request, so the layers around it were a third of
        the request.
        The engine's ``before_cursor_execute`` listeners (the statement counters) hear of
        it as of any statement. A connection that failed under it is not pooled again.
        A statement the replica could not answer runs again on the primary.
        """
        try:
            value = await self._routed_value(sql, params)
        except Exception as exc:
            if (outage := _outage(exc)) is not exc:
                raise outage from exc
            raise
        _back()
        return value

    async def _routed_value(self, sql: str, params: Sequence[Any]) -> Any:
        if self.replica is None:
            return await self._value_on(self._reads, sql, params)
        if await self.replica.use_replica():
            try:
                return await self._value_on(self._reads, sql, params)
            except Exception as exc:
                kind = replica_failure(exc)
                if kind is None:
                    raise
                if kind == "gone":
                    self.replica.failed(exc)
        return await self._value_on(self._primary_reads, sql, params)

    async def _value_on(self, reads: AsyncEngine, sql: str, params: Sequence[Any]) -> Any:
        if reads.dialect.name != "postgresql":
            async with reads.connect() as connection:
                return (await connection.exec_driver_sql(sql, tuple(params))).scalar()
        engine = reads.sync_engine
        pool = engine.pool
        record = await pool.lease() if isinstance(pool, FairAsyncPool) else None
        if record is None or not isinstance(pool, FairAsyncPool):
            return await greenlet_spawn(self._value_pooled, engine, sql, params)
        dbapi = record.dbapi_connection
        assert dbapi is not None, "a leased record is connected"
        driver = dbapi.driver_connection
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

    @staticmethod
    def _value_pooled(engine: Any, sql: str, params: Sequence[Any]) -> Any:
        # In one greenlet: the checkout, the statement and the return to the pool (each
        # greenlet_spawn costs about as much as the statement's Python side).
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

    async def _primary_lsn(self) -> int:
        return parse_lsn(await self._value_on(self._primary_reads, _PRIMARY_LSN, ()))

    async def _probe_replica(self) -> ReplicaState:
        async with self._reads.connect() as connection:
            recovering, replay, lag = (await connection.exec_driver_sql(_PROBE)).one()  # type: ignore[misc]  # SQLAlchemy types a raw statement's row as one column
        if not recovering:
            # Not a standby: the primary itself under another name (or promoted), whose
            # own position is at or past every commit it acknowledged.
            return ReplicaState(await self._primary_lsn(), 0.0)
        return ReplicaState(parse_lsn(replay), float(lag or 0.0))

    def _on_replica_connect(self, dbapi_connection: Any, _record: Any) -> None:
        # A new connection may reach a replica that restarted since the last probe and
        # replays from an earlier point: one that is behind what the router believes
        # refuses this read (it runs on the primary) and lowers the belief.
        router = self.replica
        if router is None or not router.replay_lsn:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
            row = cursor.fetchone()
        finally:
            cursor.close()
        replay = parse_lsn(row[0] if row else None)
        if replay < router.replay_lsn:
            router.behind(replay)
            dbapi_connection.close()
            raise ReplicaBehind(f"replica at {replay}, expected {router.replay_lsn}")

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
                        await self._committed()
                        await self._announce(session)
                    else:
                        take_changes(session)
                        await self._rollback(session, exc)
                    raise
                await session.commit()
                await self._committed()
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

    async def _committed(self) -> None:
        """With a replica: the commit's LSN becomes the floor replica reads must reach,
        before the write returns and before its changes are announced (so a process that
        sees the cache invalidation also sees the floor)."""
        if self.replica is None:
            return
        try:
            lsn = await self._primary_lsn()
        except Exception as exc:
            log.warning("replica_floor_unknown_after_commit", error=type(exc).__name__)
            self.replica.commit_unknown()
        else:
            await self.replica.committed(lsn)

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
                log.exception(
                    "commit_listener_failed", listener=getattr(listener, "__qualname__", "?")
                )

    async def dispose(self) -> None:
        if self.replica is not None:
            await self.replica.close()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
