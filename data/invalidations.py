"""Cache invalidations that did not reach Redis, kept in the database until one does.

A write commits, then bumps its cache tags in Redis. When Redis cannot be reached from the
writing process, the tags are recorded here (``record_invalidations``), in the database
every instance shares; each instance reads this table every few tenths of a second
(``undelivered_invalidations``), announces what it finds to Redis, and deletes it
(``forget_invalidations``). An instance serves from Redis only while its latest such
check is recent, so a write's staleness ends on every instance within a known bound,
even when its own process never reaches Redis again.

Core statements on an engine of the caller's (the cache keeps one of its own, so these
never queue behind request traffic for a pooled connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from data.models import CacheInvalidation, utcnow


async def record_invalidations(engine: AsyncEngine, tags: Iterable[str]) -> None:
    """Keeps ``tags`` for another instance to announce (its own transaction)."""
    async with engine.begin() as conn:
        await conn.execute(insert(CacheInvalidation).values(tags=sorted(tags), created_at=utcnow()))


async def undelivered_invalidations(
    engine: AsyncEngine, limit: int = 500
) -> list[tuple[int, list[str]]]:
    """The oldest rows not yet announced: ``(id, tags)``."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(CacheInvalidation.id, CacheInvalidation.tags)
            .order_by(CacheInvalidation.id)
            .limit(limit)
        )
        return [(row.id, list(row.tags)) for row in rows]


async def forget_invalidations(engine: AsyncEngine, ids: Sequence[int]) -> None:
    """Deletes rows whose tags have been announced."""
    if ids:
        async with engine.begin() as conn:
            await conn.execute(delete(CacheInvalidation).where(CacheInvalidation.id.in_(ids)))
