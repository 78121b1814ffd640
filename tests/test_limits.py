"""GraphQL limits: depth, aliases, tokens, cost, batch size, introspection and suggestions.

Each refused document is answered ``BAD_USER_INPUT`` with a message naming the limit,
and no SQL runs for it (checked with the statement counter): the limits apply before
validation and execution.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, SeededDatabase, make_settings, running_gateway

# The attack: products → reviews → author → reviews → product → … 50 deep.
HOPS = ["reviews { edges { node { ", "author { ", "reviews { edges { node { ", "product { "]


def nested(levels: int) -> str:
    opening = "".join(HOPS[i % len(HOPS)] for i in range(levels))
    closing = "".join(
        " } } }" if HOPS[i % len(HOPS)].startswith("reviews") else " }"
        for i in reversed(range(levels))
    )
    return "{ products { edges { node { " + opening + "id" + closing + " } } } }"


def refused(body: dict[str, Any], word: str) -> str:
    assert body.get("data") is None, body
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}, body
    error = body["errors"][0]
    assert word in error["message"], error
    return str(error["message"])


async def post(gateway: Gateway, payload: Any) -> Any:
    response = await gateway.client.post("/graphql", json=payload)
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response


async def test_fifty_deep_query_is_refused_before_any_sql(gateway: Gateway) -> None:
    with gateway.count_statements() as counter:
        body = await gateway.graphql(nested(50))
    message = refused(body, "depth limit")
    assert "10" in message
    assert counter.count == 0


async def test_depth_ten_is_allowed_and_eleven_is_not(gateway: Gateway) -> None:
    # products, edges, node are 3 levels; the hops add the rest; "id" is the last level.
    assert "errors" not in await gateway.graphql(
        "{ products(first: 1) { edges { node { category { products(first: 1) { edges { node {"
        " reviews(first: 1) { edges { node { id } } } } } } } } } } }"
    )
    refused(
        await gateway.graphql(
            "{ products(first: 1) { edges { node { category { products(first: 1) { edges { node {"
            " reviews(first: 1) { edges { node { author { id } } } } } } } } } } } }"
        ),
        "depth limit",
    )


async def test_a_thousand_count_aliases_run_no_sql(gateway: Gateway) -> None:
    document = "{ " + " ".join(f"a{i}: products {{ totalCount }}" for i in range(1000)) + " }"
    with gateway.count_statements() as counter:
        body = await gateway.graphql(document)
    refused(body, "token limit")
    assert counter.count == 0


async def test_aliases_are_counted_through_fragment_spreads(gateway: Gateway) -> None:
    fields = " ".join(f"c{i}: totalCount" for i in range(16))
    document = (
        "{ products(first: 1) { ...Counts } more: products(first: 1) { id: totalCount }"
        " } fragment Counts on ProductConnection { " + fields + " }"
    )
    with gateway.count_statements() as counter:
        body = await gateway.graphql(document)
    assert "errors" not in body  # 16 + 2 aliases
    doubled = (
        "{ products(first: 1) { ...Counts ...More } } "
        "fragment More on ProductConnection { ...Counts } "
        "fragment Counts on ProductConnection { " + fields + " }"
    )
    with gateway.count_statements() as counter:
        body = await gateway.graphql(doubled)
    assert "32 aliases" in refused(body, "alias limit")
    assert counter.count == 0


async def test_costly_query_is_refused_before_any_sql(gateway: Gateway) -> None:
    document = (
        "{ products(first: 100) { edges { node { reviews(first: 100) { edges { node {"
        " author { name } } } } } } } }"
    )
    with gateway.count_statements() as counter:
        body = await gateway.graphql(document)
    assert "5000" in refused(body, "cost limit")
    assert counter.count == 0
    # Variables count too.
    with_variables = (
        "query($n: Int) { products(first: $n) { edges { node {"
        " reviews(first: $n) { edges { node { id } } } } } } }"
    )
    refused(await gateway.graphql(with_variables, {"n": 100}), "cost limit")
    assert "errors" not in await gateway.graphql(with_variables, {"n": 3})


async def test_fragments_spread_exponentially_are_measured_quickly(gateway: Gateway) -> None:
    # F0 spreads F1 twice, F1 spreads F2 twice ...: 2**40 spreads if walked naively.
    fragments = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    document = "{ ...F0 } " + fragments + " fragment F40 on Query { categories { totalCount } }"
    body = await gateway.graphql(document)
    assert "errors" not in body, body
    assert isinstance(body["data"]["categories"]["totalCount"], int)


@pytest.fixture
async def tight(seeded: SeededDatabase, tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose limits are set lower than the defaults."""
    settings = make_settings(
        seeded.url,
        tmp_path,
        graphql_max_depth=3,
        graphql_max_aliases=1,
        graphql_max_tokens=40,
        graphql_max_cost=10,
        graphql_max_batch=2,
    )
    async with running_gateway(settings, seeded.backend) as gw:
        yield gw


async def test_every_limit_is_a_setting(tight: Gateway) -> None:
    assert "errors" not in await tight.graphql("{ products(first: 2) { edges { node { id } } } }")
    refused(
        await tight.graphql("{ products(first: 2) { edges { node { category { id } } } } }"),
        "depth limit is 3",
    )
    refused(
        await tight.graphql("{ a: categories { totalCount } b: categories { totalCount } }"),
        "alias limit is 1",
    )
    refused(
        await tight.graphql("{ products(first: 11) { edges { node { id } } } }"), "cost limit is 10"
    )
    refused(
        await tight.graphql("{ " + "categories { totalCount } " * 10 + "}"), "token limit is 40"
    )
    batch = [{"query": "{ categories { totalCount } }"}] * 3
    response = await post(tight, batch)
    assert response.status_code == 400
    assert "batch limit is 2" in refused(response.json(), "batch limit")


async def test_batches_run_in_order_and_at_most_ten(fresh_gateway: Gateway) -> None:
    gateway = fresh_gateway
    response = await post(gateway, [{"query": "{ categories { totalCount } }"}] * 10)
    assert response.status_code == 200
    assert len(response.json()) == 10
    response = await post(gateway, [{"query": "{ categories { totalCount } }"}] * 11)
    assert response.status_code == 400
    refused(response.json(), "batch limit is 10")
    # A mutation, then a query that sees what it wrote, then one that fails alone.
    register = (
        'mutation { register(input: {email: "batch@example.com", '
        'password: "batch-password", name: "Bat"}) { email } }'
    )
    login = (
        'mutation { login(email: "batch@example.com", password: "batch-password") { tokenType } }'
    )
    response = await post(
        gateway, [{"query": register}, {"query": login}, {"query": "{ nope }"}, {"extensions": {}}]
    )
    assert response.status_code == 200
    first, second, third, fourth = response.json()
    assert first["data"]["register"]["email"] == "batch@example.com"
    assert second["data"]["login"]["tokenType"] == "bearer"
    assert third["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert fourth["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_batching_can_be_turned_off(seeded: SeededDatabase, tmp_path: Path) -> None:
    settings = make_settings(seeded.url, tmp_path, graphql_max_batch=0)
    async with running_gateway(settings, seeded.backend) as gateway:
        response = await post(gateway, [{"query": "{ categories { totalCount } }"}])
        assert response.status_code == 400
        refused(response.json(), "Batching is disabled")


def production(url: str, tmp_path: Path, **overrides: Any) -> Any:
    return make_settings(
        url, tmp_path, environment="production", trusted_hosts="testserver", **overrides
    )


INTROSPECTION = "{ __schema { queryType { name } } }"
TYPO = "{ prodcts { totalCount } }"


async def test_production_hides_introspection_and_suggestions(
    seeded: SeededDatabase, tmp_path: Path
) -> None:
    async with running_gateway(production(seeded.url, tmp_path), seeded.backend) as gateway:
        refused(await gateway.graphql(INTROSPECTION), "introspection")
        message = refused(await gateway.graphql(TYPO), "prodcts")
        assert "Did you mean" not in message
        assert "errors" not in await gateway.graphql("{ __typename }")
    enabled = production(seeded.url, tmp_path, graphql_introspection=True, graphql_suggestions=True)
    async with running_gateway(enabled, seeded.backend) as gateway:
        body = await gateway.graphql(INTROSPECTION)
        assert body["data"]["__schema"]["queryType"]["name"] == "Query"
        assert "Did you mean" in refused(await gateway.graphql(TYPO), "prodcts")


async def test_development_keeps_introspection_and_suggestions(gateway: Gateway) -> None:
    assert "errors" not in await gateway.graphql(INTROSPECTION)
    assert "Did you mean" in refused(await gateway.graphql(TYPO), "prodcts")


def schema_query() -> str:
    """The full schema query that GraphiQL and gql send on load (graphql-core's own)."""
    from graphql import get_introspection_query

    return get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )


async def test_consoles_load_the_schema_whatever_the_limits(
    seeded: SeededDatabase, tmp_path: Path
) -> None:
    """Introspection is not counted against depth, aliases or cost where it is allowed."""
    tight = make_settings(
        seeded.url, tmp_path, graphql_max_depth=2, graphql_max_aliases=0, graphql_max_cost=1
    )
    async with running_gateway(tight, seeded.backend) as gateway:
        body = await gateway.graphql(schema_query())
        assert "errors" not in body, body["errors"]
        names = {t["name"] for t in body["data"]["__schema"]["types"]}
        assert {"Query", "Product", "Mutation", "Subscription"} <= names
        # What is not introspection is still measured in the same document.
        refused(
            await gateway.graphql(
                "{ __schema { queryType { name } } products(first: 1) { edges { node { "
                "category { name } } } } }"
            ),
            "depth limit is 2",
        )


async def test_introspection_cannot_nest_without_bound(gateway: Gateway) -> None:
    deep = (
        "{ __schema { types { fields { type { fields { type { fields { type { fields {"
        " name } } } } } } } } } }"
    )
    with gateway.count_statements() as counter:
        body = await gateway.graphql(deep)
    assert body.get("data") is None, body
    assert "Maximum introspection depth exceeded" in body["errors"][0]["message"]
    assert counter.count == 0
