"""Answers that depend on who asks are never stored by a browser or a shared cache, and
every request-level GraphQL error carries the request id."""

from __future__ import annotations

import pytest

from resolvers.persisted import sha256_of
from tests.principals import World

PRIVATE_READS = [
    ("GET", "/api/v1/users/me", None),
    ("GET", "/api/v2/users/me", None),
    ("GET", "/api/v1/orders", None),
    ("GET", "/api/v2/orders", None),
    ("GET", "/api/v2/products", None),  # staff see stock: still theirs
    ("POST", "/graphql", {"query": "{ viewer { email } }"}),
    ("POST", "/graphql", {"query": "{ products(first: 1) { totalCount } }"}),
]


@pytest.mark.parametrize(("method", "path", "body"), PRIVATE_READS)
@pytest.mark.parametrize("principal", ["customer", "staff", "key_catalog_read"])
async def test_answers_for_a_signed_in_principal_are_no_store(
    world: World, principal: str, method: str, path: str, body: object
) -> None:
    response = await world.gateway.client.request(
        method, path, json=body, headers=world.headers[principal]
    )
    assert response.status_code < 500
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_refused_credential_is_no_store_and_anonymous_catalog_reads_are_not(
    world: World,
) -> None:
    client = world.gateway.client
    refused = await client.get("/api/v1/users/me", headers={"Authorization": "Bearer nope"})
    assert (refused.status_code, refused.headers["Cache-Control"]) == (401, "no-store")
    for path in ("/api/v1/products", "/api/v2/categories"):
        assert "no-store" not in (await client.get(path)).headers.get("Cache-Control", "")


async def test_a_persisted_query_hash_mismatch_carries_the_request_id(world: World) -> None:
    response = await world.gateway.client.post(
        "/graphql",
        json={
            "query": "{ categories { totalCount } }",
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256_of("{ x }")}},
        },
    )
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["request_id"] == response.headers["X-Request-ID"]
