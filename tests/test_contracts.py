"""Contracts: the GraphQL schema file, OpenAPI, response models, migrations, import rules."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import BaseModel
from sqlalchemy import inspect

from data.db import Database
from data.migrate import downgrade, upgrade_async
from data.models import Base
from resolvers.schema import schema_sdl
from rest.schemas import CategoryOut, ListOf, ProductV1, ProductV2, ReviewOut
from tests.conftest import Gateway, PostgresDatabases, new_database_url
from tests.oracle import load_catalog

ROOT = Path(__file__).resolve().parent.parent


def test_committed_schema_is_the_code_schema() -> None:
    """Bytes, not text: a stray newline or encoding change is a difference too."""
    committed = (ROOT / "schema.graphql").read_bytes()
    assert committed == schema_sdl().encode("utf-8"), "run `gateway export-schema`"


# -- OpenAPI ------------------------------------------------------------------------------

PAGE_PARAMS = {"limit", "cursor"}
ROUTES = {
    "/categories": PAGE_PARAMS,
    "/categories/{slug}": set(),
    "/products": PAGE_PARAMS | {"category", "q", "min_price", "max_price", "in_stock", "sort"},
    "/products/{product_id}": set(),
    "/products/{product_id}/reviews": PAGE_PARAMS,
}
SORTS = {"created_at", "-created_at", "price", "-price", "name", "-name"}


@pytest.fixture
async def openapi(gateway: Gateway) -> dict[str, Any]:
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def query_params(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_openapi_lists_every_catalog_route(openapi: dict[str, Any], version: str) -> None:
    paths = openapi["paths"]
    for route, params in ROUTES.items():
        operation = paths[f"/api/{version}{route}"]["get"]
        assert operation.get("description") or operation.get("summary"), route
        expected = params | ({"fields"} if version == "v2" else set())
        assert set(query_params(operation)) == expected, route
        for status in ("200", "404", "422"):
            assert status in operation["responses"], (route, status)
    products = query_params(paths[f"/api/{version}/products"]["get"])
    assert set(products["sort"]["schema"]["enum"]) == SORTS
    assert products["sort"]["schema"]["default"] == "-created_at"
    limit = query_params(paths[f"/api/{version}/products"]["get"])["limit"]["schema"]
    assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 100, 20)


async def test_openapi_shows_each_version_its_money(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert {"price_cents", "currency"} <= set(schemas["ProductV1"]["properties"])
    assert "price" in schemas["ProductV2"]["properties"]

    def listed(version: str) -> str:
        response = openapi["paths"][f"/api/{version}/products"]["get"]["responses"]["200"]
        return str(response["content"]["application/json"]["schema"])

    assert "ProductV1" in listed("v1")
    assert "ProductV2" in listed("v2")


def validate(model: type[BaseModel], body: dict[str, Any]) -> None:
    """Valid against ``model``, with no key the model does not document."""
    model.model_validate(body)
    assert set(body) <= set(model.model_fields), set(body) - set(model.model_fields)


@pytest.mark.parametrize(("version", "product_model"), [("v1", ProductV1), ("v2", ProductV2)])
async def test_rest_bodies_match_the_documented_models(
    gateway: Gateway, version: str, product_model: type[BaseModel]
) -> None:
    catalog = await load_catalog(gateway)
    product_id = max(catalog.active_ids(), key=lambda i: len(catalog.reviews_of(i)))
    base = f"/api/{version}"
    bodies: list[tuple[type[BaseModel], str]] = [
        (ListOf[product_model], "/products?limit=100"),  # type: ignore[valid-type]
        (ListOf[product_model], "/products?limit=3&sort=price"),  # type: ignore[valid-type]
        (product_model, f"/products/{product_id}"),
        (ListOf[CategoryOut], "/categories?limit=100"),
        (CategoryOut, f"/categories/{catalog.categories[0].slug}"),
        (ListOf[ReviewOut], f"/products/{product_id}/reviews?limit=100"),
    ]
    for model, path in bodies:
        response = await gateway.client.get(base + path)
        assert response.status_code == 200, response.text
        body = response.json()
        validate(model, body)
        for item in body.get("data", []):
            validate(model.model_fields["data"].annotation.__args__[0], item)  # type: ignore


# Migrations.


async def test_migrations_match_the_models_and_go_down_again(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    url = await new_database_url(backend, tmp_path, pg_databases)
    await upgrade_async(url)
    db = Database.from_url(url)
    try:
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), Base.metadata
                )
            )
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert diff == []
        assert set(Base.metadata.tables) <= tables
        await asyncio.to_thread(downgrade, url, "base")
        async with db.engine.connect() as conn:
            left = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        assert left <= {"alembic_version"}
        await upgrade_async(url)  # and up again on the same database
    finally:
        await db.dispose()


# -- import direction ---------------------------------------------------------------------

FORBIDDEN_IMPORTS = {
    "data": {"fastapi", "starlette", "strawberry", "rest", "resolvers", "gateway", "graphql"},
    "rest": {"resolvers", "gateway", "strawberry", "graphql"},
    "resolvers": {"rest", "gateway", "fastapi"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", list(FORBIDDEN_IMPORTS))
def test_imports_flow_one_way(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN_IMPORTS[package])
        for path in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_import_guard_sees_every_kind_of_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import fastapi.routing\nfrom strawberry import type as t\n"
        "def f():\n    from rest import api\n"
    )
    assert imported_roots(probe) == {"fastapi", "strawberry", "rest"}
