"""Two gateways over one seeded PostgreSQL database: compiled reads on and off.

Import ``pair_fixture`` into a test module to use the ``pair`` fixture.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from data.db import Database
from data.models import Base
from data.seed import seed
from tests.conftest import (
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    require_postgres,
    running_gateway,
)
from tests.principals import World, build_world


@dataclass
class Pair:
    compiled: Gateway
    resolved: Gateway
    world: World


@pytest.fixture(scope="module", name="pair")
async def pair_fixture(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[Pair]:
    await require_postgres()
    tmp = Path(tmp_path_factory.mktemp("compiled"))
    url = await new_database_url("postgresql", tmp, pg_databases)
    db = Database.from_url(url)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    async with db.write() as session:
        await seed(session, scale=60, demo=True)
    await db.dispose()
    # The response cache off in both: the paths under comparison must run every time.
    off_settings = make_settings(url, tmp, compiled_reads=False, cache_enabled=False)
    on_settings = make_settings(url, tmp, compiled_reads=True, cache_enabled=False)
    async with (
        running_gateway(off_settings, "postgresql") as off,
        running_gateway(on_settings, "postgresql") as on,
    ):
        world = await build_world(off)
        yield Pair(on, off, world)
