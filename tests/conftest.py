"""Test fixtures: every database test runs on SQLite, and on PostgreSQL when reachable.

``GATEWAY_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns an unreachable PostgreSQL
or Redis into a failure instead of a skip. Each run creates its own databases (and Redis
key prefix) and drops them at the end, so no earlier run can change a result.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from data.db import Database
from data.migrate import upgrade_async
from data.models import Base
from data.seed import seed
from gateway.app import create_app
from gateway.settings import Settings

POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("GATEWAY_TEST_REQUIRE_SERVICES") == "1"
# One id per run; each parallel worker (pytest-xdist) adds its own name to the run's id, so
# workers never share a database or a Redis key.
RUN_ID = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:10] + os.environ.get(
    "PYTEST_XDIST_WORKER", ""
)
SEED_SCALE = 60

# Fixtures of their own module: the world of principals for access tests.
pytest_plugins = ["tests.principals", "tests.cache_world"]


async def _postgres_reachable() -> bool:
    engine = create_async_engine(POSTGRES_URL, connect_args={"timeout": 3})
    try:
        async with engine.connect():
            return True
    except Exception:
        return False
    finally:
        await engine.dispose()


_reachable: dict[str, bool] = {}


def _postgres_reachable_now() -> bool:
    if "pg" not in _reachable:
        _reachable["pg"] = asyncio.run(_postgres_reachable())
    return _reachable["pg"]


def _redis_reachable_now() -> bool:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        return bool(client.ping())
    except (OSError, redis.RedisError):
        return False
    finally:
        client.close()


def _service_state(reachable: bool) -> str:
    if reachable:
        return "required" if REQUIRE_SERVICES else "reachable"
    if REQUIRE_SERVICES:
        return "NOT REACHABLE: its tests fail (GATEWAY_TEST_REQUIRE_SERVICES=1)"
    return "not reachable: its tests are skipped"


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Says, before any test runs, which databases and Redis this run tests against."""
    postgres = make_url(POSTGRES_URL)
    where = f"{postgres.host}:{postgres.port or 5432}"
    redis_shown = (
        make_url(REDIS_URL.replace("redis://", "redis+x://", 1))
        .render_as_string(hide_password=True)
        .replace("redis+x://", "redis://", 1)
    )
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    count = getattr(config.option, "numprocesses", None)
    workers = f"gw<0-{count - 1}>" if count else ""  # each worker's own (see RUN_ID)
    return [
        *([f"workers: {count} processes (pytest-xdist), file by file"] if count else []),
        "database: SQLite (embedded file, always) + PostgreSQL at "
        f"{where} ({_service_state(_postgres_reachable_now())}); "
        "each database test runs on both, file by file",
        "redis: in-process + "
        f"{redis_shown} ({_service_state(_redis_reachable_now())}); "
        "cache, rate-limit and event tests run on both",
        f"chromium: {browser or 'not installed'} (the offline GraphiQL test)",
        f"this run: databases gw_test_{RUN_ID}{workers}_<n> and Redis keys "
        f"{REDIS_RUN_PREFIX}{workers}*, removed at its end",
    ]


# `./dev test` without a path runs the suite in this many worker processes (pytest-xdist);
# the tests mostly wait on PostgreSQL, Redis and servers of their own, so more workers than
# cores pay. A path or -k runs in this process, as does an explicit -n 0 or -p no:xdist.
WORKERS = 3

# Files whose tests stop, freeze or time real processes (servers, PostgreSQL, the
# benchmark's wrk): one worker runs them one after another, so two never load the machine
# at once. Each other file is a group of its own: its module fixtures start once.
ONE_AT_A_TIME = frozenset(
    {
        "test_bench.py",
        "test_cache_faults.py",
        "test_faults.py",
        "test_replica.py",
        "test_serving.py",
    }
)


@pytest.hookimpl(wrapper=True)
def pytest_cmdline_main(config: pytest.Config) -> Any:
    """Spreads a whole-suite run over WORKERS processes, file by file (see WORKERS)."""
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if (
        config.pluginmanager.hasplugin("xdist")
        and "PYTEST_XDIST_WORKER" not in os.environ
        and config.option.numprocesses is None
        and whole_suite
        and not config.option.keyword
        and not config.option.collectonly
        and not config.option.usepdb
    ):
        config.option.numprocesses = WORKERS
    if config.pluginmanager.hasplugin("xdist") and config.option.numprocesses:
        if config.option.dist == "no":  # -n alone: file by file, see ByFile
            config.option.dist = "loadfile"
            config.option.loadscopereorder = False  # the order pytest_collection_modifyitems made
    if config.pluginmanager.hasplugin("xdist") and config.option.testrunuid is None:
        config.option.testrunuid = RUN_ID  # the workers' ids start with this run's
    return (yield)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With --dist loadfile, hands each worker whole files, and the ONE_AT_A_TIME files as one."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ByFile(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "one-at-a-time" if Path(path).name in ONE_AT_A_TIME else path

    return ByFile(config, log)


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture parameters
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Runs (and so reports) each file once: its SQLite, PostgreSQL and other tests together.

    pytest orders tests to set each session fixture's parameter up once, which made a run
    list every file up to three times (SQLite pass, PostgreSQL pass, the rest). A stable
    sort by each file's first place keeps pytest's order inside a file. A parallel worker
    puts the ONE_AT_A_TIME files first, then the files with the most tests: the scheduler
    hands files out in this order, so the longest ones start at once instead of ending the run.
    """
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.nodeid.split("::", 1)[0], index)
    if "PYTEST_XDIST_WORKER" not in os.environ:
        items.sort(key=lambda item: first[item.nodeid.split("::", 1)[0]])
        return
    sizes: dict[str, int] = {}
    for item in items:
        sizes[item.path.name] = sizes.get(item.path.name, 0) + 1

    def place(item: pytest.Item) -> tuple[bool, int, int]:
        name = item.path.name
        return (name not in ONE_AT_A_TIME, -sizes[name], first[item.nodeid.split("::", 1)[0]])

    items.sort(key=place)


async def require_postgres() -> None:
    if "pg" not in _reachable:
        _reachable["pg"] = await _postgres_reachable()
    if not _reachable["pg"]:
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL is required but unreachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL is not reachable")


# One numbering for every PostgresDatabases of the run: two of them never pick one name.
_DATABASE_NUMBERS = itertools.count()


class PostgresDatabases:
    """Creates databases named after this run and drops them all at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def _admin(self) -> AsyncEngine:
        return create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")

    async def create(self) -> str:
        name = f"gw_test_{RUN_ID}_{next(_DATABASE_NUMBERS)}"
        admin = self._admin()
        try:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        finally:
            await admin.dispose()
        self.created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self.created:
            return
        admin = self._admin()
        try:
            async with admin.connect() as conn:
                for name in self.created:
                    await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.dispose()


@pytest.fixture(scope="session")
async def pg_databases() -> AsyncIterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    await databases.drop_all()


async def new_database_url(backend: str, tmp_path: Path, pg_databases: PostgresDatabases) -> str:
    if backend == "postgresql":
        await require_postgres()
        return await pg_databases.create()
    return f"sqlite+aiosqlite:///{tmp_path / f'gw-{uuid.uuid4().hex[:8]}.sqlite3'}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class SeededDatabase:
    backend: str
    url: str
    counts: dict[str, int] = field(default_factory=dict)


@pytest.fixture(scope="session")
def _seeded_by_backend() -> dict[str, SeededDatabase]:
    return {}


@pytest.fixture(scope="session")
async def seeded(
    backend: str,
    tmp_path_factory: pytest.TempPathFactory,
    pg_databases: PostgresDatabases,
    _seeded_by_backend: dict[str, SeededDatabase],
) -> SeededDatabase:
    """A migrated database with the deterministic seed, shared by read-only tests."""
    # Made once per backend: the run goes file by file (see pytest_collection_modifyitems),
    # so this fixture is set up again each time a file switches backends.
    if backend in _seeded_by_backend:
        return _seeded_by_backend[backend]
    url = await new_database_url(backend, tmp_path_factory.mktemp(backend), pg_databases)
    await upgrade_async(url)
    db = Database.from_url(url)
    try:
        async with db.write() as session:
            counts = await seed(session, scale=SEED_SCALE)
    finally:
        await db.dispose()
    _seeded_by_backend[backend] = SeededDatabase(backend, url, counts)
    return _seeded_by_backend[backend]


@pytest.fixture
async def fresh(backend: str, tmp_path: Path, pg_databases: PostgresDatabases) -> SeededDatabase:
    """A seeded database of this test's own, for tests that write."""
    url = await new_database_url(backend, tmp_path, pg_databases)
    db = Database.from_url(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.write() as session:
            counts = await seed(session, scale=SEED_SCALE)
    finally:
        await db.dispose()
    return SeededDatabase(backend, url, counts)


# Rate limits: generous unless a test asks for strict ones; a run's own keys.
RATE_LIMIT_PREFIX = f"gw-test-{RUN_ID}:rl:"
GENEROUS_LIMITS: dict[str, Any] = {
    "rate_limit_per_minute": 1_000_000,
    "auth_rate_limit_per_minute": 1_000_000,
    "login_backoff_failures": 1_000_000,
    "rate_limit_key_prefix": RATE_LIMIT_PREFIX,
}

# Every Redis key a test's gateway may write lives under this run's own prefix, which the
# session deletes at its end: an earlier run's cached answers, tag stamps or persisted
# queries must never answer a later run (its database is another).
REDIS_RUN_PREFIX = f"gw-test-{RUN_ID}"
RUN_REDIS_KEYS: dict[str, Any] = {
    "redis_prefix": f"{REDIS_RUN_PREFIX}-ev",
    "cache_prefix": f"{REDIS_RUN_PREFIX}:c:",
    "graphql_apq_redis_prefix": f"{REDIS_RUN_PREFIX}:apq:",
}


@pytest.fixture(scope="session", autouse=True)
async def _delete_the_runs_redis_keys() -> AsyncIterator[None]:
    yield
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        # Every prefix goes on with "-" or ":": worker gw1 must not match gw10's keys.
        pattern = REDIS_RUN_PREFIX + "[-:]*"
        keys = [key async for key in client.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start : start + 500])
    except (OSError, aioredis.RedisError):
        if REQUIRE_SERVICES:
            raise
    finally:
        await client.aclose()


def make_settings(url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": url,
        "data_dir": tmp_path,
        "jwt_secret": "test-secret-" + "x" * 40,
        **GENEROUS_LIMITS,
        # A loaded CI machine is slow; tests of the time limit set theirs.
        "request_timeout_seconds": 120.0,
        # Tests read access lines as soon as the answer is back;
        # batching has tests of its own (test_observability).
        "log_flush_seconds": 0.0,
        **RUN_REDIS_KEYS,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class StatementCounter:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)


@dataclass
class Gateway:
    """A running app with a client; ``count_statements()`` counts SQL it sends."""

    app: Any
    client: httpx.AsyncClient
    backend: str

    @contextmanager
    def count_statements(self) -> Iterator[StatementCounter]:
        counter = StatementCounter()
        engine = self.app.state.db.engine.sync_engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            yield counter
        finally:
            event.remove(engine, "before_cursor_execute", counter)

    async def graphql(
        self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, **kwargs
        )
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def running_gateway(settings: Settings, backend: str) -> AsyncIterator[Gateway]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Gateway(app, client, backend)


@pytest.fixture
async def gateway(seeded: SeededDatabase, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The gateway over the shared seeded database (read-only tests)."""
    async with running_gateway(make_settings(seeded.url, tmp_path), seeded.backend) as gw:
        yield gw


@pytest.fixture
async def fresh_gateway(fresh: SeededDatabase, tmp_path: Path) -> AsyncIterator[Gateway]:
    """The gateway over a database of this test's own (tests that write)."""
    async with running_gateway(make_settings(fresh.url, tmp_path), fresh.backend) as gw:
        yield gw
