"""The response cache as a client sees it: X-Cache, keys, visibility classes, privacy, ETags.

Every test runs on SQLite and PostgreSQL, with the in-process store and with Redis.
"""

from __future__ import annotations

import orjson

from tests.cache_world import CacheWorld, cache_settings
from tests.conftest import running_gateway

CATALOG_PAGE = """
query Page($first: Int!) {
  products(first: $first) {
    edges { node { databaseId name price { amount currency } category { slug name }
      reviews(first: 3) { edges { node { rating title author { name } } } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
FULL_CATALOG = "{ products(first: 100) { edges { node { databaseId isActive stock } } } }"


async def test_rest_miss_then_hit_with_the_same_body_and_etag(cache_world: CacheWorld) -> None:
    first = await cache_world.rest("/api/v1/products?limit=5&sort=name")
    second = await cache_world.rest("/api/v1/products?limit=5&sort=name")
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert first.headers["link"] == second.headers["link"]
    assert second.headers["content-type"] == "application/json"
    # The same parameters in another order are the same request.
    reordered = await cache_world.rest("/api/v1/products?sort=name&limit=5")
    assert reordered.headers["x-cache"] == "HIT"
    assert reordered.content == first.content
    # Another query, another version: other answers.
    other = await cache_world.rest("/api/v1/products?limit=6&sort=name")
    assert other.headers["x-cache"] == "MISS"
    assert len(other.json()["data"]) == 6
    v2 = await cache_world.rest("/api/v2/products?limit=5&sort=name")
    assert v2.headers["x-cache"] == "MISS"
    assert isinstance(v2.json()["data"][0]["price"], dict)


async def test_every_cached_rest_route_hits(cache_world: CacheWorld) -> None:
    product = cache_world.reviewed_product
    slug = cache_world.category[1]
    for version in ("v1", "v2"):
        for path in (
            "/products",
            f"/products/{product}",
            f"/products/{product}/reviews",
            "/categories",
            f"/categories/{slug}",
            "/products?fields=id,name",
        ):
            url = f"/api/{version}{path}"
            first, second = await cache_world.rest(url), await cache_world.rest(url)
            assert first.status_code == 200, (url, first.text)
            assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT"), url
            assert first.content == second.content


async def test_if_none_match_gives_304_on_miss_and_on_hit(cache_world: CacheWorld) -> None:
    url = f"/api/v1/products/{cache_world.reviewed_product}"
    etag = (await cache_world.rest(url)).headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")
    hit = await cache_world.rest(url, headers={"If-None-Match": etag})
    assert (hit.status_code, hit.headers["x-cache"], hit.content) == (304, "HIT", b"")
    assert hit.headers["etag"] == etag
    stale = await cache_world.rest(url, headers={"If-None-Match": '"not-it"'})
    assert (stale.status_code, stale.headers["x-cache"]) == (200, "HIT")
    # On a miss the full answer is computed and stored, and the client still gets 304.
    miss = await cache_world.rest("/api/v2/categories", headers={"If-None-Match": "*"})
    assert (miss.status_code, miss.headers["x-cache"], miss.content) == (304, "MISS", b"")
    again = await cache_world.rest("/api/v2/categories")
    assert (again.status_code, again.headers["x-cache"]) == (200, "HIT")
    assert again.json()["data"]
    weak = await cache_world.rest(
        "/api/v2/categories", headers={"If-None-Match": f'"x", W/{again.headers["etag"]}'}
    )
    assert (weak.status_code, weak.headers["x-cache"]) == (304, "HIT")


async def test_graphql_whitespace_does_not_matter_variables_do(cache_world: CacheWorld) -> None:
    first = await cache_world.gql(CATALOG_PAGE, {"first": 3})
    assert first.headers["x-cache"] == "MISS"
    assert "errors" not in first.json()
    spaced = "# a comment\n" + CATALOG_PAGE.replace("\n", "\n\n   ").replace("{", " {  ")
    again = await cache_world.gql(spaced, {"first": 3})
    assert again.headers["x-cache"] == "HIT"
    assert again.content == first.content
    named = await cache_world.gql(CATALOG_PAGE, {"first": 3}, operationName="Page")
    assert named.headers["x-cache"] == "MISS"  # operationName is part of the key
    other = await cache_world.gql(CATALOG_PAGE, {"first": 4})
    assert other.headers["x-cache"] == "MISS"
    assert len(other.json()["data"]["products"]["edges"]) == 4
    # GET: its own entry, the same bytes.
    params = {"query": CATALOG_PAGE, "variables": orjson.dumps({"first": 3}).decode()}
    get1 = await cache_world.client.get("/graphql", params=params)
    get2 = await cache_world.client.get("/graphql", params=params)
    assert (get1.headers["x-cache"], get2.headers["x-cache"]) == ("MISS", "HIT")
    assert get1.content == get2.content == first.content


async def test_cached_graphql_is_byte_identical_to_uncached(cache_world: CacheWorld) -> None:
    await cache_world.gql(CATALOG_PAGE, {"first": 5})
    hit = await cache_world.gql(CATALOG_PAGE, {"first": 5})
    assert hit.headers["x-cache"] == "HIT"
    settings = cache_settings(
        cache_world.url, cache_world.tmp, cache_world.setup, cache_enabled=False
    )
    async with running_gateway(settings, cache_world.gateway.backend) as plain:
        response = await plain.client.post(
            "/graphql", json={"query": CATALOG_PAGE, "variables": {"first": 5}}
        )
        rest = await plain.client.get("/api/v1/products?limit=7")
    assert response.headers["x-cache"] == "BYPASS"
    assert response.content == hit.content
    cached = await cache_world.rest("/api/v1/products?limit=7")
    cached = await cache_world.rest("/api/v1/products?limit=7")
    assert cached.headers["x-cache"] == "HIT"
    assert (cached.content, cached.headers["etag"]) == (rest.content, rest.headers["etag"])


async def test_visibility_classes_never_share_entries(cache_world: CacheWorld) -> None:
    inactive = cache_world.inactive_product
    staff = await cache_world.gql(FULL_CATALOG, who="staff")
    assert staff.headers["x-cache"] == "MISS"
    staff_nodes = [e["node"] for e in staff.json()["data"]["products"]["edges"]]
    assert inactive in {n["databaseId"] for n in staff_nodes}
    assert all(n["stock"] is not None for n in staff_nodes)
    # A catalog:read key is in the staff class: it shares the entry.
    key = await cache_world.gql(FULL_CATALOG, who="key_catalog_read")
    assert (key.headers["x-cache"], key.content) == ("HIT", staff.content)
    for who in ("anonymous", "customer"):
        response = await cache_world.gql(FULL_CATALOG, who=who)
        assert response.headers["x-cache"] == "MISS", who
        body = response.json()
        assert {e["node"]["databaseId"] for e in body["data"]["products"]["edges"]}.isdisjoint(
            {inactive}
        ), who
        assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}
        # Answers with errors carry a request id: never stored, never replayed.
        again = await cache_world.gql(FULL_CATALOG, who=who)
        assert again.headers["x-cache"] == "MISS", who
        assert (
            again.json()["errors"][0]["extensions"]["request_id"]
            != body["errors"][0]["extensions"]["request_id"]
        )
    # REST: staff's list has stock and inactive rows, and is never served to the others.
    url = "/api/v1/products?limit=100"
    staff_rest = await cache_world.rest(url, who="staff")
    assert any("stock" in p for p in staff_rest.json()["data"])
    anonymous = await cache_world.rest(url)
    assert anonymous.headers["x-cache"] == "MISS"
    assert all("stock" not in p for p in anonymous.json()["data"])
    assert inactive not in {p["id"] for p in anonymous.json()["data"]}
    assert (await cache_world.rest(url)).headers["x-cache"] == "HIT"
    # Customers are a class of their own, even where they see what anonymous sees.
    customer = await cache_world.rest(url, who="customer")
    assert customer.headers["x-cache"] == "MISS"
    assert customer.content == anonymous.content
    assert (await cache_world.rest(url, who="customer")).headers["x-cache"] == "HIT"
    assert (await cache_world.rest(url, who="admin")).headers["x-cache"] == "HIT"
    gone = await cache_world.rest(f"/api/v1/products/{inactive}")
    assert gone.status_code == 404
    assert (await cache_world.rest(f"/api/v1/products/{inactive}", who="staff")).status_code == 200


PRIVATE_QUERIES = [
    "{ viewer { name email } }",
    "{ viewer { name } }",
    "{ orders(first: 5) { edges { node { databaseId } } } }",
    "{ users(first: 5) { edges { node { name } } } }",
    "{ apiKeys { edges { node { name } } } }",
    "{ products(first: 3) { edges { node { reviews { edges { node { author { email } } } } } } } }",
    "{ products(first: 3) { edges { node { reviews { edges { node { author { orders "
    "{ totalCount } } } } } } } } }",
    "query { products(first: 3) { edges { node { ...R } } } } fragment R on Product "
    "{ reviews { edges { node { author { ... on User { role } } } } } }",
    '{ node(id: "UHJvZHVjdDox") { id } }',
    "{ products(first: 1) { totalCount } viewer { name } }",
    "{ __schema { queryType { name } } }",
]


async def test_private_reads_bypass_and_are_never_shared(cache_world: CacheWorld) -> None:
    for query in PRIVATE_QUERIES:
        answers = {}
        for who in ("customer", "admin", "customer"):
            response = await cache_world.gql(query, who=who)
            assert response.headers["x-cache"] == "BYPASS", (query, who, response.text)
            answers.setdefault(who, response.json())
        if "viewer" in query:
            names = {who: body["data"]["viewer"]["name"] for who, body in answers.items()}
            assert names["customer"] != names["admin"]


async def test_mutations_private_rest_and_failed_credentials_bypass(
    cache_world: CacheWorld,
) -> None:
    for path in ("/api/v1/users/me", "/api/v1/orders", "/api/v2/users/me"):
        response = await cache_world.rest(path, who="customer")
        assert (response.status_code, response.headers["x-cache"]) == (200, "BYPASS"), path
    mutation = await cache_world.client.post(
        "/graphql",
        json={"query": 'mutation { updateViewer(input: {name: "Cleo"}) { name } }'},
        headers=cache_world.headers["customer"],
    )
    assert mutation.headers["x-cache"] == "BYPASS"
    patch = await cache_world.client.patch(
        "/api/v1/users/me", json={"name": "Cleo"}, headers=cache_world.headers["customer"]
    )
    assert (patch.status_code, patch.headers["x-cache"]) == (200, "BYPASS")
    await cache_world.rest("/api/v1/products")
    bad = {"Authorization": "Bearer not-a-token"}
    refused = await cache_world.rest("/api/v1/products", headers=bad)
    assert (refused.status_code, refused.headers["x-cache"]) == (401, "BYPASS")
    refused_gql = await cache_world.client.post(
        "/graphql", json={"query": "{ categories { totalCount } }"}, headers=bad
    )
    assert refused_gql.headers["x-cache"] == "BYPASS"
    assert refused_gql.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # Not found, bad input and other non-200 answers are never stored.
    for _ in range(2):
        missing = await cache_world.rest("/api/v1/products/999999")
        assert (missing.status_code, missing.headers["x-cache"]) == (404, "MISS")
        invalid = await cache_world.rest("/api/v1/products?limit=0")
        assert (invalid.status_code // 100, invalid.headers["x-cache"]) == (4, "MISS")
    for path in ("/health/live", "/metrics", "/api/v1/nope"):
        assert (await cache_world.client.get(path)).headers["x-cache"] == "BYPASS"


async def test_cache_metrics_count_by_interface(cache_world: CacheWorld) -> None:
    await cache_world.rest("/api/v1/categories")
    await cache_world.rest("/api/v1/categories")
    await cache_world.gql("{ categories { totalCount } }")
    await cache_world.gql("{ categories { totalCount } }")
    await cache_world.gql("{ categories { totalCount } }")
    await cache_world.gql("{ viewer { name } }", who="customer")
    text = (await cache_world.client.get("/metrics")).text
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_cache_")
    }
    assert values['gateway_cache_hits_total{interface="rest"}'] == 1
    assert values['gateway_cache_misses_total{interface="rest"}'] >= 1
    assert values['gateway_cache_hits_total{interface="graphql"}'] == 2
    assert values['gateway_cache_misses_total{interface="graphql"}'] == 1
    assert values['gateway_cache_bypasses_total{interface="graphql"}'] == 1
