"""The compiled read path answers exactly as the resolver path: same status, same
headers that matter, the same body bytes, for a generated corpus run as every kind of
principal, in both response media types (``Accept``), against two apps over one
PostgreSQL database (compiled reads on and off)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.compiled_corpus import Doc, Facts, generate, rest_calls
from tests.compiled_pair import Pair, pair_fixture  # noqa: F401  (provides ``pair``)
from tests.conftest import Gateway
from tests.principals import PRINCIPALS

GRAPHQL_DOCUMENTS = 520
REST_REQUESTS = 300
COMPILED_PREFIX = "/* compiled */ "
GRAPHQL_RESPONSE = "application/graphql-response+json"
# What clients send: nothing, the legacy type, the new type, the spec's recommendation.
ACCEPTS: tuple[dict[str, str], ...] = (
    {},
    {"Accept": "application/json"},
    {"Accept": GRAPHQL_RESPONSE},
    {"Accept": f"{GRAPHQL_RESPONSE}; charset=utf-8, application/json; charset=utf-8"},
)


def accept_for(i: int) -> dict[str, str]:
    """Every ``Accept`` meets every principal as ``i`` counts up."""
    return ACCEPTS[(i // len(PRINCIPALS)) % len(ACCEPTS)]


CATALOG_PAGE = """query Catalog {
  products(first: 20) { edges { node {
    id name price { amount currency } averageRating
    category { id name }
    reviews(first: 3) { edges { node { id rating title author { id name } } } }
  } } }
}"""

PRODUCT_PAGE = """query Detail($id: ID!) {
  product(id: $id) {
    id name description sku price { amount currency } inStock averageRating createdAt
    category { id name slug }
    reviews(first: 10) { totalCount pageInfo { hasNextPage endCursor }
      edges { cursor node { id rating title body createdAt author { id name } } } }
  }
}"""


async def _facts(gateway: Gateway, headers: dict[str, str], inactive: int) -> Facts:
    async def q(query: str) -> dict[str, Any]:
        body = await gateway.graphql(query, headers=headers)
        assert "errors" not in body, body
        return body["data"]

    cursors: dict[str, list[str]] = {}
    for field in ("CREATED_AT", "PRICE", "NAME"):
        for direction in ("ASC", "DESC"):
            name = ("-" if direction == "DESC" else "") + field.lower()
            data = await q(
                f"{{ products(first: 8, orderBy: {{field: {field}, "
                f"direction: {direction}}}) {{ edges {{ cursor }} }} }}"
            )
            cursors[name] = [e["cursor"] for e in data["products"]["edges"]]
    data = await q("""{ products(first: 60) { edges { node { databaseId sku
        reviews(first: 5) { edges { cursor node { databaseId } } } } } }
        categories(first: 100) { edges { cursor node { slug } } } }""")
    products = [e["node"] for e in data["products"]["edges"]]
    reviews = [e for p in products for e in p["reviews"]["edges"]]
    return Facts(
        product_ids=[p["databaseId"] for p in products[:30]],
        inactive_product=inactive,
        skus=[p["sku"] for p in products[:10]],
        slugs=[e["node"]["slug"] for e in data["categories"]["edges"]],
        review_ids=[e["node"]["databaseId"] for e in reviews[:30]],
        product_cursors=cursors,
        category_cursors=[e["cursor"] for e in data["categories"]["edges"]][:8],
        review_cursors=[e["cursor"] for e in reviews[::4]][:10],
    )


async def _both(
    pair: Pair, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> tuple[Any, Any, bool]:
    """Both answers, and whether the compiled app answered with one compiled statement.

    A compiled statement followed by others is a fallback after the statement ran: only
    a missing object may cause that (the resolver path then says NOT_FOUND); anything
    else is a compiled statement that failed, which must never hide behind the fallback.
    """
    # One request id for both: it is echoed in headers and GraphQL error extensions.
    headers = {**headers, "X-Request-ID": "differential"}
    with pair.compiled.count_statements() as counter:
        compiled = await pair.compiled.client.request(method, url, headers=headers, **kwargs)
    resolved = await pair.resolved.client.request(method, url, headers=headers, **kwargs)
    # Identity (a user's token family, an API key) may run statements before the read.
    at = [i for i, s in enumerate(counter.statements) if s.startswith(COMPILED_PREFIX)]
    assert len(at) <= 1, (url, kwargs, headers, [s[:300] for s in counter.statements])
    attempted = bool(at)
    ran = attempted and at[0] == counter.count - 1
    if attempted and not ran:
        assert resolved.status_code == 404 or b'"NOT_FOUND"' in resolved.content, (
            url,
            kwargs,
            resolved.content[:500],
        )
    return compiled, resolved, ran


def _same(compiled: Any, resolved: Any) -> str | None:
    for name in ("content-type", "etag", "link"):
        if compiled.headers.get(name) != resolved.headers.get(name):
            return f"header {name}: {compiled.headers.get(name)} != {resolved.headers.get(name)}"
    if compiled.status_code != resolved.status_code:
        return f"status {compiled.status_code} != {resolved.status_code}"
    if compiled.content != resolved.content:
        return (
            f"body\n  compiled {compiled.content[:1500]!r}\n  resolved {resolved.content[:1500]!r}"
        )
    return None


@pytest.mark.postgres
async def test_generated_rest_corpus_is_byte_identical(pair: Pair) -> None:
    world = pair.world
    facts = await _facts(pair.resolved, world.headers["admin"], world.inactive_product)
    failures, compiled_runs = [], 0
    calls = rest_calls(facts, REST_REQUESTS)
    for i, call in enumerate(calls):
        who = PRINCIPALS[i % len(PRINCIPALS)]
        compiled, resolved, ran = await _both(
            pair, "GET", call.path, world.headers[who], params=call.params
        )
        compiled_runs += ran
        problem = _same(compiled, resolved)
        if problem:
            failures.append(f"#{i} GET {call.path} {call.params} as {who}: {problem}")
    assert not failures, f"{len(failures)} of {len(calls)} differ:\n" + "\n\n".join(failures[:5])
    assert compiled_runs > len(calls) / 2, (compiled_runs, len(calls))


@pytest.mark.postgres
async def test_generated_graphql_corpus_is_byte_identical(pair: Pair) -> None:
    world = pair.world
    facts = await _facts(pair.resolved, world.headers["admin"], world.inactive_product)
    docs: list[Doc] = generate(facts, GRAPHQL_DOCUMENTS)
    failures, compiled_runs, runs = [], 0, 0
    for i, doc in enumerate(docs):
        # Principals rotate, so every kind meets every kind of shape.
        for who in (PRINCIPALS[i % len(PRINCIPALS)],):
            compiled, resolved, ran = await _both(
                pair,
                "POST",
                "/graphql",
                {**world.headers[who], **accept_for(i)},
                json={"query": doc.query, "variables": doc.variables},
            )
            runs += 1
            compiled_runs += ran
            problem = _same(compiled, resolved)
            if problem:
                failures.append(
                    f"#{i} as {who} {accept_for(i)}: {problem}\n"
                    f"  query {doc.query}\n  variables {doc.variables}"
                )
    assert not failures, f"{len(failures)} of {runs} differ:\n" + "\n\n".join(failures[:5])
    # The corpus must exercise the compiler, not only the fallback.
    assert compiled_runs > runs / 2, (compiled_runs, runs)


def _catalog_statements(statements: list[str]) -> list[str]:
    """The statements after identity's (a token family or API key lookup)."""
    skip = ("SELECT users.role", "SELECT api_keys.", "UPDATE api_keys")
    return [s for s in statements if not s.startswith(skip)]


@pytest.mark.postgres
@pytest.mark.parametrize("who", PRINCIPALS)
async def test_catalog_and_detail_pages_run_one_statement(pair: Pair, who: str) -> None:
    headers = {**pair.world.headers[who], "X-Request-ID": "pages"}
    detail = {"id": base64.b64encode(f"Product:{pair.world.active_product}".encode()).decode()}
    for query, variables in ((CATALOG_PAGE, {}), (PRODUCT_PAGE, detail)):
        body = {"query": query, "variables": variables}
        with pair.compiled.count_statements() as on:
            compiled = await pair.compiled.client.post("/graphql", json=body, headers=headers)
        with pair.resolved.count_statements() as off:
            resolved = await pair.resolved.client.post("/graphql", json=body, headers=headers)
        assert compiled.status_code == resolved.status_code == 200
        assert b'"errors"' not in compiled.content
        assert compiled.content == resolved.content
        catalog = _catalog_statements(on.statements)
        assert len(catalog) == 1, on.statements
        assert catalog[0].startswith(COMPILED_PREFIX)
        assert len(_catalog_statements(off.statements)) >= 3


@pytest.mark.postgres
@pytest.mark.parametrize("who", PRINCIPALS)
async def test_rest_list_and_detail_run_one_statement(pair: Pair, who: str) -> None:
    headers = {**pair.world.headers[who], "X-Request-ID": "rest"}
    for path in (
        "/api/v2/products?limit=20",
        f"/api/v1/products/{pair.world.active_product}",
        "/api/v1/products?limit=5&sort=price",
    ):
        with pair.compiled.count_statements() as on:
            compiled = await pair.compiled.client.get(path, headers=headers)
        resolved = await pair.resolved.client.get(path, headers=headers)
        assert compiled.status_code == 200
        assert _same(compiled, resolved) is None
        catalog = _catalog_statements(on.statements)
        assert len(catalog) == 1, on.statements
        assert catalog[0].startswith(COMPILED_PREFIX)
        # The ETag is the same, so a revalidation is a 304 from either path.
        again = {**headers, "If-None-Match": compiled.headers["etag"]}
        assert (await pair.compiled.client.get(path, headers=again)).status_code == 304
        assert (await pair.resolved.client.get(path, headers=again)).status_code == 304


FALLBACKS = {
    # A field rule that is an error: null plus FORBIDDEN, only the resolver path says so.
    "stock as anonymous": ("{ products(first: 2) { edges { node { name stock } } } }", {}),
    "private author field": (
        "{ products(first: 3) { edges { node { reviews(first: 2) "
        "{ edges { node { author { name email } } } } } } } }",
        {},
    ),
    "not found": ('{ product(sku: "SKU-NONE") { name } }', {}),
    "bad cursor": ('{ products(first: 2, after: "nope") { totalCount } }', {}),
    "account field": ("{ viewer { name } }", {}),
    "introspection": ("{ __schema { queryType { name } } }", {}),
    "mutation": (
        'mutation { login(email: "customer@example.com", password: "wrong") { accessToken } }',
        {},
    ),
    # Refused before execution: a 400 under application/graphql-response+json.
    "parse error": ("{ products(first: 2) {", {}),
    "variable coercion": ("query($id: ID!) { product(id: $id) { name } }", {"id": None}),
}


@pytest.mark.postgres
@pytest.mark.parametrize("accept", ["application/json", GRAPHQL_RESPONSE])
@pytest.mark.parametrize("case", sorted(FALLBACKS))
async def test_what_the_compiler_does_not_cover_falls_back(
    pair: Pair, case: str, accept: str
) -> None:
    query, variables = FALLBACKS[case]
    body = {"query": query, "variables": variables}
    headers = {"X-Request-ID": "fallback", "Accept": accept}
    with pair.compiled.count_statements() as on:
        compiled = await pair.compiled.client.post("/graphql", json=body, headers=headers)
    resolved = await pair.resolved.client.post("/graphql", json=body, headers=headers)
    assert _same(compiled, resolved) is None, _same(compiled, resolved)
    # Not found runs the compiled statement, sees the null, and lets the resolver path
    # answer with its error; every other case never builds a statement.
    attempted = [s for s in on.statements if s.startswith(COMPILED_PREFIX)]
    assert len(attempted) == (1 if case == "not found" else 0), on.statements
    if case in ("stock as anonymous", "not found", "bad cursor", "private author field"):
        assert b'"errors"' in compiled.content
    if case in ("parse error", "variable coercion"):
        assert compiled.status_code == (400 if accept == GRAPHQL_RESPONSE else 200)


async def test_sqlite_and_the_setting_keep_the_resolver_path(gateway: Gateway) -> None:
    """On SQLite the compiled path never runs, whatever the setting (on by default)."""
    with gateway.count_statements() as counter:
        body = await gateway.graphql(CATALOG_PAGE)
    assert "errors" not in body
    compiled = [s for s in counter.statements if s.startswith(COMPILED_PREFIX)]
    assert len(compiled) == (1 if gateway.backend == "postgresql" else 0)
    assert gateway.app.state.compiled_reads is True
