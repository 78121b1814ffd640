"""Running a compiled statement: one pooled connection, one round trip, parsed by orjson."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Sequence
from typing import Any

import orjson

from data.actor import Actor
from data.db import Database
from gateway.compiled.planner.graph import CompiledQuery, Sel, compile_query
from gateway.compiled.planner.sql import MARK


@functools.lru_cache(maxsize=1024)
def _marked(sql: str) -> str:
    """The statement as sent, one string per plan: asyncpg keys its prepared statements
    by the text, and a new string of a few kilobytes is hashed again on every call."""
    return MARK + sql


def fetch_raw(db: Database, sql: str, params: Sequence[Any]) -> Awaitable[str | None]:
    """The one JSON value ``sql`` selects, as PostgreSQL wrote it (``None`` for NULL):
    every compiled statement selects ``...::text``. Not a coroutine itself: the read's is
    the caller's to await, one frame fewer under the round trip."""
    return db.read_value(_marked(sql), params)


async def fetch_json(db: Database, sql: str, params: Sequence[Any]) -> Any:
    """The one JSON value ``sql`` selects, parsed (``None`` for SQL NULL)."""
    raw = await fetch_raw(db, sql, params)
    return None if raw is None else orjson.loads(raw)


async def fetch_query(db: Database, actor: Actor, root: Sequence[Sel]) -> dict[str, Any] | None:
    """The ``data`` of a catalog query, or ``None`` when a required root object is missing
    (the resolver path then answers with its ``NOT_FOUND`` error). ``Unsupported`` when
    the query is outside the compiler."""
    return await fetch_compiled(db, compile_query(actor, root))


async def fetch_compiled(db: Database, compiled: CompiledQuery) -> dict[str, Any] | None:
    """As ``fetch_query``, for a statement compiled before (and perhaps cached)."""
    return compiled_data(compiled, await fetch_json(db, compiled.sql, compiled.params))


def compiled_data(compiled: CompiledQuery, data: dict[str, Any]) -> dict[str, Any] | None:
    """``data``, or ``None`` when a root object the query requires is missing."""
    if any(data.get(key) is None for key in compiled.required):
        return None
    return data
