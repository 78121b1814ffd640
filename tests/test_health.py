"""Probes, HTTP hardening and production settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.health import DRAIN
from gateway.http.security import DOCS_CSP, PAGE_CSP, STRICT_CSP
from gateway.settings import Settings
from tests.conftest import (
    POSTGRES_URL,
    REDIS_URL,
    REQUIRE_SERVICES,
    Gateway,
    PostgresDatabases,
    make_settings,
    require_postgres,
    running_gateway,
)


async def require_redis() -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    finally:
        await client.aclose()


async def test_live_and_ready(gateway: Gateway) -> None:
    assert (await gateway.client.get("/health/live")).json() == {"status": "ok"}
    response = await gateway.client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "failed": [], "checks": {"database": "ok"}}


async def test_ready_answers_503_while_draining(gateway: Gateway) -> None:
    DRAIN.begin()
    try:
        response = await gateway.client.get("/health/ready")
    finally:
        DRAIN.reset()
    assert response.status_code == 503
    assert response.json()["failed"] == ["shutdown"]
    assert (await gateway.client.get("/health/live")).status_code == 200


async def test_ready_checks_redis(tmp_path: Path) -> None:
    await require_redis()
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}"
    async with running_gateway(make_settings(url, tmp_path, redis_url=REDIS_URL), "sqlite") as gw:
        response = await gw.client.get("/health/ready")
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"database": "ok", "redis": "ok"}
    bad = make_settings(url, tmp_path, redis_url="redis://127.0.0.1:1/0")
    async with running_gateway(bad, "sqlite") as gw:
        # Redis is a soft dependency: every request is still served, so still ready.
        response = await gw.client.get("/health/ready")
        assert response.status_code == 200
        body = response.json()
        assert (body["status"], body["failed"], body["degraded"]) == ("degraded", [], ["redis"])
        assert body["checks"]["database"] == "ok"
        assert body["checks"]["redis"].startswith("failed")
        metrics = (await gw.client.get("/metrics")).text
        assert 'gateway_dependency_up{dependency="redis"} 0.0' in metrics
        assert 'gateway_dependency_up{dependency="database"} 1.0' in metrics


async def test_ready_follows_a_sqlite_file_that_comes_and_goes(tmp_path: Path) -> None:
    """The database's directory is missing, then made: no restart in between."""
    where = tmp_path / "not-yet"
    url = f"sqlite+aiosqlite:///{where / 'db.sqlite3'}"
    async with running_gateway(make_settings(url, tmp_path), "sqlite") as gw:
        response = await gw.client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["failed"] == ["database"]
        where.mkdir()
        assert (await gw.client.get("/health/ready")).status_code == 200


async def test_ready_follows_postgres_going_away_and_back(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    await require_postgres()
    url = await pg_databases.create()
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")

    async def admin_sql(sql: str) -> None:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(sql)

    try:
        async with running_gateway(make_settings(url, tmp_path), "postgresql") as gw:
            assert (await gw.client.get("/health/ready")).status_code == 200
            await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            response = await gw.client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["failed"] == ["database"]
            await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            response = await gw.client.get("/health/ready")
            assert response.status_code == 200, response.text
    finally:
        await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.dispose()


async def test_security_headers_scoped_by_page(gateway: Gateway) -> None:
    api = await gateway.client.get("/api/v1/products?limit=1")
    assert api.headers["content-security-policy"] == STRICT_CSP
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["x-frame-options"] == "DENY"
    assert api.headers["referrer-policy"] == "no-referrer"
    assert "server" not in api.headers
    graphiql = await gateway.client.get("/graphql", headers={"Accept": "text/html"})
    assert graphiql.status_code == 200
    assert graphiql.headers["content-security-policy"] == PAGE_CSP
    assert "https:" not in PAGE_CSP  # GraphiQL's assets are the gateway's own
    docs = await gateway.client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-security-policy"] == DOCS_CSP == PAGE_CSP
    assert "https:" not in docs.text  # Swagger UI's assets are the gateway's own too
    assert "<script>" not in docs.text  # no inline script: the policy allows 'self' only
    problem = await gateway.client.get("/nowhere")
    assert problem.headers["content-security-policy"] == STRICT_CSP


async def test_cors_and_trusted_hosts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}"
    settings = make_settings(
        url, tmp_path, cors_origins="https://shop.example", trusted_hosts="testserver,api.example"
    )
    async with running_gateway(settings, "sqlite") as gw:
        preflight = await gw.client.options(
            "/graphql",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        other = await gw.client.options(
            "/graphql",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
        assert (await gw.client.get("/health/live")).status_code == 200
        refused = await gw.client.get("/health/ready", headers={"Host": "evil.example"})
        assert refused.status_code == 200  # probes come by IP
        refused = await gw.client.get("/metrics", headers={"Host": "evil.example"})
        assert refused.status_code == 400
        assert refused.headers["x-request-id"]


def test_settings_refuse_wildcard_origin_with_credentials() -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(_env_file=None, cors_origins="*", cors_allow_credentials=True)  # type: ignore[call-arg]
    assert Settings(_env_file=None, cors_origins="a.example, b.example").cors_origins == [  # type: ignore[call-arg]
        "a.example",
        "b.example",
    ]


@pytest.mark.parametrize("secret", [None, "changeme", "short-but-real"])
def test_production_refuses_a_placeholder_secret(secret: str | None) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        Settings(_env_file=None, environment="production", jwt_secret=secret)  # type: ignore[call-arg]


async def test_production_hides_docs_and_graphiql_unless_enabled(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.sqlite3'}"
    production = {"environment": "production", "jwt_secret": "p" * 40}
    settings = make_settings(url, tmp_path)
    async with running_gateway(settings.model_copy(update=production), "sqlite") as gw:
        assert (await gw.client.get("/docs")).status_code == 404
        assert (await gw.client.get("/openapi.json")).status_code == 404
        page = await gw.client.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()
    enabled = {**production, "enable_docs": True, "enable_graphiql": True}
    async with running_gateway(settings.model_copy(update=enabled), "sqlite") as gw:
        assert (await gw.client.get("/docs")).status_code == 200
        page = await gw.client.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" in page.text.lower()
