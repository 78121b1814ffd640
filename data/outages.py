"""Database outages: connection-level failures recognised in one place, logged once.

A failure is an outage when the database could not be reached or stopped answering:
the connection was refused, reset or closed, the server is starting up or shutting
down, a statement or a connection attempt timed out, or no pooled connection came free
in time. ``Database`` turns these into ``Unavailable`` (503 ``UNAVAILABLE`` with
``Retry-After`` in both interfaces); anything else (a constraint, a bug in a statement)
stays what it is. ``DATABASE`` remembers whether this process is in an outage, so that
the log says "unavailable" once when one begins and "available" once when a statement
succeeds again, instead of a traceback per request.
"""

from __future__ import annotations

import sqlite3
import time

import asyncpg
import structlog
from sqlalchemy import exc as sa

from data.errors import Unavailable

log = structlog.get_logger("gateway.db")
RETRY_AFTER_SECONDS = 2
_DRIVER_OUTAGES: tuple[type[BaseException], ...] = (
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, starting up, cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.ConnectionDoesNotExistError,
)
# SQLite says "operational error" for a missing table as well as for a file it cannot
# open or a lock it cannot get; only the latter are outages.
_SQLITE_OUTAGES = ("locked", "unable to open", "disk i/o", "busy")
# Raised bare by the drivers while connecting or waiting for an answer; counted only for
# failures of database work (``Database``), where nothing else raises them.
_TRANSPORT_OUTAGES = (OSError, TimeoutError)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 8:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def is_outage(exc: BaseException, *, transport: bool = False) -> bool:
    """Whether ``exc`` says the database is unreachable (``transport``: bare socket
    errors and timeouts count too, for failures known to come from database work)."""
    kinds = _DRIVER_OUTAGES + _TRANSPORT_OUTAGES if transport else _DRIVER_OUTAGES
    for item in _chain(exc):
        if isinstance(item, sqlite3.OperationalError):
            return any(words in str(item).lower() for words in _SQLITE_OUTAGES)
        if isinstance(item, kinds):
            return True
        if isinstance(item, sa.DBAPIError) and item.connection_invalidated:
            return True
    return False


class OutageState:
    """Whether this process is in an outage of one dependency, logged on change only."""

    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        self.down_since: float | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: str) -> None:
        """Notes a failure (``error``: its class name; a driver's message can hold a host
        or a user name)."""
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning(f"{self.dependency}_unavailable", error=error)

    def recovered(self) -> None:
        if self.down_since is not None:
            seconds = time.monotonic() - self.down_since
            self.down_since = None
            log.info(f"{self.dependency}_available", down_seconds=round(seconds, 3))


DATABASE = OutageState("database")


def unavailable_from(exc: BaseException, *, transport: bool = False) -> Unavailable | None:
    """``exc`` as the ``Unavailable`` to answer with, noting the outage; ``None`` when it
    is no outage."""
    if isinstance(exc, Unavailable):
        return exc
    if not is_outage(exc, transport=transport):
        return None
    DATABASE.failed(type(exc).__name__)
    return Unavailable(
        "The database is unavailable; try again shortly.", retry_after=RETRY_AFTER_SECONDS
    )
