"""A database outage is 503 ``UNAVAILABLE`` with ``Retry-After`` in both interfaces,
logged once when it begins and once when it ends, never a traceback per request."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine
from structlog.testing import capture_logs

from data.db import Database
from data.models import Base
from data.outages import DATABASE, is_outage
from data.seed import DEMO_PASSWORD, seed
from tests.conftest import (
    POSTGRES_URL,
    PostgresDatabases,
    make_settings,
    require_postgres,
    running_gateway,
)

PRODUCTS = "{ products(first: 2) { edges { node { name } } } }"
LEAKS = ("Traceback", "sqlite", "asyncpg", "sqlalchemy", "OperationalError", "Connect call")


async def _seed(url: str) -> None:
    db = Database.from_url(url)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.write() as session:
            await seed(session, scale=20, demo=True)
    finally:
        await db.dispose()


def assert_unavailable(response: httpx.Response, graphql: bool = False) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    for leak in LEAKS:
        assert leak not in response.text
    if graphql:
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert error["extensions"]["request_id"] == response.headers["X-Request-ID"]
    else:
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["code"], body["status"]) == ("UNAVAILABLE", 503)
        assert body["request_id"] == response.headers["X-Request-ID"]


async def _every_interface(
    client: httpx.AsyncClient, headers: dict[str, str] | None = None
) -> list[httpx.Response]:
    return [
        await client.get("/api/v1/products", headers=headers),
        await client.get("/api/v2/products/1", headers=headers),
        await client.post("/graphql", json={"query": PRODUCTS}, headers=headers),
    ]


def outage_events(logs: list[dict[str, Any]]) -> list[str]:
    names = (
        "database_unavailable",
        "database_available",
        "unhandled_exception",
        "graphql_unexpected_error",
    )
    return [entry["event"] for entry in logs if entry["event"] in names]


async def test_a_sqlite_file_out_of_reach_is_503_and_back_without_a_restart(
    tmp_path: Path,
) -> None:
    home, away = tmp_path / "home", tmp_path / "away"
    home.mkdir()
    await _seed(f"sqlite+aiosqlite:///{home / 'db.sqlite3'}")
    DATABASE.recovered()  # whatever an earlier test left
    settings = make_settings(
        f"sqlite+aiosqlite:///{away / 'db.sqlite3'}", tmp_path, cache_enabled=False
    )
    with capture_logs() as logs:
        async with running_gateway(settings, "sqlite") as gw:
            for _ in range(3):
                rest_v1, rest_v2, graphql = await _every_interface(gw.client)
                assert_unavailable(rest_v1)
                assert_unavailable(rest_v2)
                assert_unavailable(graphql, graphql=True)
            ready = await gw.client.get("/health/ready")
            assert (ready.status_code, ready.json()["failed"]) == (503, ["database"])
            shutil.move(home, away)
            assert (await gw.client.get("/api/v1/products")).status_code == 200
            graphql = await gw.client.post("/graphql", json={"query": PRODUCTS})
            assert graphql.status_code == 200
            assert "errors" not in graphql.json()
    # One line when it began, one when it ended: no traceback per request.
    assert outage_events(logs) == ["database_unavailable", "database_available"]


async def test_postgres_refusing_connections_is_503_for_reads_and_writes_then_recovers(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    await require_postgres()
    url = await pg_databases.create()
    await _seed(url)
    name = url.rsplit("/", 1)[1]
    admin = create_async_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")

    async def admin_sql(sql: str) -> None:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(sql)

    DATABASE.recovered()
    settings = make_settings(url, tmp_path, cache_enabled=False)
    try:
        with capture_logs() as logs:
            async with running_gateway(settings, "postgresql") as gw:
                token = (
                    await gw.client.post(
                        "/api/v1/auth/token",
                        data={
                            "username": "customer@example.com",
                            "password": DEMO_PASSWORD,
                        },
                    )
                ).json()["access_token"]
                bearer = {"Authorization": f"Bearer {token}"}
                assert (await gw.client.get("/api/v1/products")).status_code == 200
                await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                await admin_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                )
                for _ in range(3):
                    rest_v1, rest_v2, graphql = await _every_interface(gw.client)
                    assert_unavailable(rest_v1)
                    assert_unavailable(rest_v2)
                    assert_unavailable(graphql, graphql=True)
                order = {"items": [{"product_id": 1, "quantity": 1}]}
                assert_unavailable(
                    await gw.client.post("/api/v1/orders", json=order, headers=bearer)
                )
                placed = await gw.client.post(
                    "/graphql",
                    headers=bearer,
                    json={
                        "query": "mutation { placeOrder(input: {items: [{productId: 1, "
                        "quantity: 1}]}) { id } }"
                    },
                )
                assert_unavailable(placed, graphql=True)
                await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                assert (await gw.client.get("/api/v1/products")).status_code == 200
                response = await gw.client.post("/api/v1/orders", json=order, headers=bearer)
                assert response.status_code == 201, response.text
    finally:
        await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.dispose()
    assert outage_events(logs) == ["database_unavailable", "database_available"]


def test_what_counts_as_an_outage() -> None:
    import sqlite3

    from sqlalchemy import exc as sa

    assert is_outage(ConnectionRefusedError(111, "refused"), transport=True)
    assert not is_outage(ConnectionRefusedError(111, "refused"))  # not known to be the db's
    assert is_outage(
        sa.OperationalError("x", {}, sqlite3.OperationalError("unable to open database file"))
    )
    assert not is_outage(
        sa.OperationalError("x", {}, sqlite3.OperationalError("no such table: products"))
    )
    assert not is_outage(sa.IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_outage(ValueError("a bug"))


@pytest.fixture(autouse=True)
def _no_outage_left_behind() -> Any:
    yield
    DATABASE.recovered()


async def test_openapi_documents_the_statuses_every_route_can_answer(
    tmp_path: Path,
) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'o.sqlite3'}", tmp_path)
    async with running_gateway(settings, "sqlite") as gw:
        spec = (await gw.client.get("/openapi.json")).json()
    assert "Problem" in spec["components"]["schemas"]
    for path in ("/api/v1/products", "/api/v2/orders"):
        for operation in spec["paths"][path].values():
            responses = operation["responses"]
            assert {"414", "431", "503"} <= responses.keys()
            assert "Retry-After" in responses["503"]["headers"]
