"""Automatic persisted queries (in process and in Redis) and the allow-list mode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from gateway.cli import main as cli
from resolvers.persisted import sha256_of
from tests.conftest import (
    REDIS_URL,
    REQUIRE_SERVICES,
    RUN_ID,
    Gateway,
    SeededDatabase,
    make_settings,
    running_gateway,
)

QUERY = "{ categories { totalCount } }"
HASH = sha256_of(QUERY)


def apq(digest: str = HASH, query: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": digest}}}
    if query is not None:
        body["query"] = query
    return body


def code_of(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


async def run(gateway: Gateway, payload: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.client.post("/graphql", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


async def get(gateway: Gateway, payload: dict[str, Any]) -> dict[str, Any]:
    params = {"extensions": json.dumps(payload["extensions"])}
    if "query" in payload:
        params["query"] = payload["query"]
    response = await gateway.client.get(
        "/graphql", params=params, headers={"accept": "application/json"}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def check_protocol(gateway: Gateway, other: Gateway | None = None) -> None:
    """The Apollo APQ exchange: miss, register, hit (through ``other`` too when given)."""
    assert code_of(await run(gateway, apq())) == "PERSISTED_QUERY_NOT_FOUND"
    wrong = await run(gateway, apq(sha256_of("{ __typename }"), QUERY))
    assert code_of(wrong) == "BAD_USER_INPUT"
    assert code_of(await run(gateway, apq())) == "PERSISTED_QUERY_NOT_FOUND"
    registered = await run(gateway, apq(HASH, QUERY))
    assert isinstance(registered["data"]["categories"]["totalCount"], int)
    for target in (gateway, other or gateway):
        assert (await run(target, apq()))["data"] == registered["data"]
        assert (await get(target, apq()))["data"] == registered["data"]
    bad = await run(gateway, {"extensions": {"persistedQuery": {"version": 2}}})
    assert code_of(bad) == "BAD_USER_INPUT"


async def test_automatic_persisted_queries_in_process(gateway: Gateway) -> None:
    await check_protocol(gateway)


async def test_persisted_mutations_do_not_run_over_get(gateway: Gateway) -> None:
    mutation = 'mutation { logout(input: {refreshToken: "x"}) }'
    await run(gateway, apq(sha256_of(mutation), mutation))
    response = await gateway.client.get(
        "/graphql", params={"extensions": json.dumps(apq(sha256_of(mutation))["extensions"])}
    )
    assert response.status_code == 405
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception:
        await client.aclose()
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis is not reachable")
    prefix = f"gw_test_{RUN_ID}:apq:"
    try:
        yield prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def test_automatic_persisted_queries_are_shared_through_redis(
    seeded: SeededDatabase, tmp_path: Path, redis_prefix: str
) -> None:
    settings = make_settings(
        seeded.url, tmp_path, redis_url=REDIS_URL, graphql_apq_redis_prefix=redis_prefix
    )
    async with (
        running_gateway(settings, seeded.backend) as first,
        running_gateway(settings, seeded.backend) as second,
    ):
        await check_protocol(first, second)
    client = aioredis.from_url(REDIS_URL)
    try:
        assert await client.get(redis_prefix + HASH) == QUERY.encode()
    finally:
        await client.aclose()


async def test_allowlist_mode_runs_only_listed_documents(
    seeded: SeededDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = tmp_path / "operations"
    documents.mkdir()
    (documents / "count.graphql").write_text(QUERY)
    manifest = tmp_path / "allowed.json"
    cli(["persist-queries", str(documents), "--output", str(manifest)])
    assert "1 operations" in capsys.readouterr().out
    assert json.loads(manifest.read_text())["operations"][0]["id"] == HASH

    settings = make_settings(
        seeded.url, tmp_path, graphql_allowlist=manifest, graphql_allowlist_only=True
    )
    async with running_gateway(settings, seeded.backend) as gateway:
        by_hash = await run(gateway, apq())
        assert isinstance(by_hash["data"]["categories"]["totalCount"], int)
        assert (await get(gateway, apq()))["data"] == by_hash["data"]
        assert (await run(gateway, {"query": QUERY}))["data"] == by_hash["data"]
        other = "{ products(first: 1) { totalCount } }"
        assert code_of(await run(gateway, {"query": other})) == "QUERY_NOT_IN_SAFELIST"
        assert code_of(await run(gateway, apq(sha256_of(other)))) == "PERSISTED_QUERY_NOT_IN_LIST"
        # Nothing can be registered in allow-list mode.
        assert (
            code_of(await run(gateway, apq(sha256_of(other), other)))
            == "PERSISTED_QUERY_NOT_IN_LIST"
        )
        assert code_of(await run(gateway, {"query": other})) == "QUERY_NOT_IN_SAFELIST"


def test_persist_queries_refuses_an_invalid_document(tmp_path: Path) -> None:
    document = tmp_path / "bad.graphql"
    document.write_text("{ nosuchfield }")
    with pytest.raises(SystemExit, match="nosuchfield"):
        cli(["persist-queries", str(document), "--output", str(tmp_path / "out.json")])
