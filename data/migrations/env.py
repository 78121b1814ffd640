"""Alembic environment: async engines for SQLite and PostgreSQL alike.

The URL comes from ``config.attributes["url"]`` (set by ``data.migrate``) or
``sqlalchemy.url``; ``render_as_batch`` lets the same migrations alter SQLite tables.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from data.db import make_engine
from data.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url: str | None = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError('no database URL: set config.attributes["url"] or sqlalchemy.url')
    return url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = make_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
