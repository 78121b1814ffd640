"""Read-your-writes through the response cache, stampedes, and Redis going away.

``WRITES`` is a table: each row is a write (through REST, GraphQL or the service layer)
that puts a new marker value somewhere, and the cached reads, in both interfaces, that
must show it as soon as the write has returned. Add a row for every new kind of write.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, select

from data.changes import category_changed, product_changed
from data.models import Category, Product, Review
from gateway.redis_client import Commands, connect
from gateway.settings import Settings
from resolvers.ids import to_global_id
from tests.cache_world import CacheWorld, build_cache_world, cache_settings
from tests.conftest import running_gateway

Read = Callable[[CacheWorld], Awaitable["Seen"]]
WriteFn = Callable[[CacheWorld, str], Awaitable[None]]


@dataclass(frozen=True)
class Seen:
    x_cache: str
    text: str


async def _rest(world: CacheWorld, path: str) -> Seen:
    response = await world.rest(path)
    assert response.status_code == 200, response.text
    return Seen(response.headers["x-cache"], response.text)


async def _gql(world: CacheWorld, query: str) -> Seen:
    response = await world.gql(query)
    assert "errors" not in response.json(), response.text
    return Seen(response.headers["x-cache"], response.text)


# -- reads that must change -----------------------------------------------------------


def rest_reviews(version: str) -> Read:
    return lambda w: _rest(w, f"/api/{version}/products/{w.reviewed_product}/reviews?limit=100")


async def gql_reviews(w: CacheWorld) -> Seen:
    return await _gql(
        w,
        f'{{ product(id: "{w.reviewed_product}") {{ reviews(first: 100) '
        "{ edges { node { author { name } } } } } }",
    )


async def gql_author_in_page(w: CacheWorld) -> Seen:
    return await _gql(
        w,
        "{ products(first: 100) { edges { node { reviews(first: 10) "
        "{ edges { node { author { name } } } } } } } }",
    )


def rest_product(version: str) -> Read:
    return lambda w: _rest(w, f"/api/{version}/products/{w.reviewed_product}")


async def rest_product_list(w: CacheWorld) -> Seen:
    return await _rest(w, "/api/v2/products?limit=100&fields=id,name")


async def gql_product(w: CacheWorld) -> Seen:
    return await _gql(w, f'{{ product(id: "{w.reviewed_product}") {{ name }} }}')


async def gql_product_list(w: CacheWorld) -> Seen:
    return await _gql(w, "{ products(first: 100) { edges { node { name } } } }")


def rest_category(version: str) -> Read:
    return lambda w: _rest(w, f"/api/{version}/categories/{w.category[1]}")


async def rest_category_list(w: CacheWorld) -> Seen:
    return await _rest(w, "/api/v1/categories?limit=100")


async def gql_category(w: CacheWorld) -> Seen:
    return await _gql(w, f'{{ category(slug: "{w.category[1]}") {{ name }} }}')


async def gql_product_category(w: CacheWorld) -> Seen:
    return await _gql(w, "{ products(first: 100) { edges { node { category { name } } } } }")


async def gql_review_titles(w: CacheWorld) -> Seen:
    return await _gql(
        w,
        f'{{ product(id: "{w.reviewed_product}") {{ averageRating '
        "reviews(first: 10) { edges { node { title } } } } }",
    )


REVIEW_READS: tuple[Read, ...] = (rest_reviews("v1"), rest_reviews("v2"), gql_review_titles)
AUTHOR_READS: tuple[Read, ...] = (
    rest_reviews("v1"),
    rest_reviews("v2"),
    gql_reviews,
    gql_author_in_page,
)
PRODUCT_READS: tuple[Read, ...] = (
    rest_product("v1"),
    rest_product("v2"),
    rest_product_list,
    gql_product,
    gql_product_list,
)
CATEGORY_READS: tuple[Read, ...] = (
    rest_category("v1"),
    rest_category("v2"),
    rest_category_list,
    gql_category,
    gql_product_category,
)


# -- writes ---------------------------------------------------------------------------


async def rest_patch_me(w: CacheWorld, marker: str) -> None:
    response = await w.client.patch(
        "/api/v1/users/me", json={"name": marker}, headers=w.headers["customer"]
    )
    assert response.status_code == 200, response.text


async def gql_update_viewer(w: CacheWorld, marker: str) -> None:
    response = await w.client.post(
        "/graphql",
        json={
            "query": "mutation($n: String!) { updateViewer(input: {name: $n}) { name } }",
            "variables": {"n": marker},
        },
        headers=w.headers["customer"],
    )
    assert response.json()["data"]["updateViewer"]["name"] == marker, response.text


async def rest_admin_patch_user(w: CacheWorld, marker: str) -> None:
    response = await w.client.patch(
        f"/api/v2/users/{w.user_ids['customer']}", json={"name": marker}, headers=w.headers["admin"]
    )
    assert response.status_code == 200, response.text


async def gql_update_user(w: CacheWorld, marker: str) -> None:
    response = await w.client.post(
        "/graphql",
        json={
            "query": "mutation($id: ID!, $n: String!) { updateUser(id: $id, input: {name: $n}) "
            "{ name } }",
            "variables": {"id": to_global_id("User", w.user_ids["customer"]), "n": marker},
        },
        headers=w.headers["admin"],
    )
    assert response.json()["data"]["updateUser"]["name"] == marker, response.text


async def service_rename_product(w: CacheWorld, marker: str) -> None:
    async with w.db.write() as session:
        product = await session.get(Product, w.reviewed_product)
        assert product is not None
        product.name = marker
        product_changed(session, product.id)


async def service_rename_category(w: CacheWorld, marker: str) -> None:
    async with w.db.write() as session:
        category = await session.get(Category, w.category[0])
        assert category is not None
        category.name = marker
        category_changed(session, category.id)


async def _api(w: CacheWorld, who: str, method: str, path: str, body: dict[str, object]) -> None:
    response = await w.client.request(method, path, json=body, headers=w.headers[who])
    assert response.status_code in (200, 201), response.text


async def _mutate(w: CacheWorld, who: str, query: str, variables: dict[str, object]) -> None:
    response = await w.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=w.headers[who]
    )
    assert "errors" not in response.json(), response.text


async def rest_patch_product(w: CacheWorld, marker: str) -> None:
    await _api(w, "staff", "PATCH", f"/api/v1/products/{w.reviewed_product}", {"name": marker})


async def gql_update_product(w: CacheWorld, marker: str) -> None:
    await _mutate(
        w,
        "staff",
        "mutation($id: ID!, $n: String!) { updateProduct(id: $id, input: {name: $n}) { name } }",
        {"id": str(w.reviewed_product), "n": marker},
    )


async def rest_patch_category(w: CacheWorld, marker: str) -> None:
    await _api(w, "staff", "PATCH", f"/api/v2/categories/{w.category[1]}", {"name": marker})


async def gql_update_category(w: CacheWorld, marker: str) -> None:
    await _mutate(
        w,
        "admin",
        "mutation($s: String!, $n: String!) { updateCategory(slug: $s, "
        "input: {name: $n}) { name } }",
        {"s": w.category[1], "n": marker},
    )


async def _customer_review(w: CacheWorld) -> int:
    async with w.db.read() as session:
        review = await session.scalar(
            select(Review.id).where(
                Review.author_id == w.user_ids["customer"], Review.product_id == w.reviewed_product
            )
        )
    assert review is not None
    return review


async def rest_patch_review(w: CacheWorld, marker: str) -> None:
    review = await _customer_review(w)
    await _api(w, "customer", "PATCH", f"/api/v1/reviews/{review}", {"title": marker})


async def gql_update_review(w: CacheWorld, marker: str) -> None:
    review = await _customer_review(w)
    await _mutate(
        w,
        "customer",
        "mutation($id: ID!, $t: String!) { updateReview(id: $id, input: {title: $t}) { title } }",
        {"id": to_global_id("Review", review), "t": marker},
    )


async def _clear_review_by(w: CacheWorld, who: str) -> None:
    """The seed may have given this author a review of the product: one per author."""
    async with w.db.write() as session:
        await session.execute(
            delete(Review).where(
                Review.author_id == w.user_ids[who], Review.product_id == w.reviewed_product
            )
        )


async def rest_post_review(w: CacheWorld, marker: str) -> None:
    await _clear_review_by(w, "staff")
    await _api(
        w,
        "staff",
        "POST",
        f"/api/v2/products/{w.reviewed_product}/reviews",
        {"rating": 5, "title": marker},
    )


async def gql_create_review(w: CacheWorld, marker: str) -> None:
    await _clear_review_by(w, "admin")
    await _mutate(
        w,
        "admin",
        "mutation($p: ID!, $t: String!) { createReview(input: "
        "{productId: $p, rating: 1, title: $t}) { title } }",
        {"p": to_global_id("Product", w.reviewed_product), "t": marker},
    )


@dataclass(frozen=True)
class Write:
    name: str
    run: WriteFn
    reads: tuple[Read, ...]


# Every kind of catalog write, through both interfaces (orders: see the stock test below).
WRITES = [
    Write("rest PATCH /products/{id} name", rest_patch_product, PRODUCT_READS),
    Write("graphql updateProduct name", gql_update_product, PRODUCT_READS),
    Write("rest PATCH /categories/{slug} name", rest_patch_category, CATEGORY_READS),
    Write("graphql updateCategory name", gql_update_category, CATEGORY_READS),
    Write("rest PATCH /reviews/{id} title", rest_patch_review, REVIEW_READS),
    Write("graphql updateReview title", gql_update_review, REVIEW_READS),
    Write("rest POST /products/{id}/reviews", rest_post_review, REVIEW_READS),
    Write("graphql createReview", gql_create_review, REVIEW_READS),
    Write("rest PATCH /users/me name", rest_patch_me, AUTHOR_READS),
    Write("graphql updateViewer name", gql_update_viewer, AUTHOR_READS),
    Write("rest admin PATCH /users/{id} name", rest_admin_patch_user, AUTHOR_READS),
    Write("graphql updateUser name", gql_update_user, AUTHOR_READS),
    Write("service product rename + product_changed", service_rename_product, PRODUCT_READS),
    Write("service category rename + category_changed", service_rename_category, CATEGORY_READS),
]


@pytest.mark.parametrize("write", WRITES, ids=[w.name for w in WRITES])
async def test_read_your_writes(cache_world: CacheWorld, write: Write) -> None:
    marker = f"Marker {uuid.uuid4().hex[:8]}"
    for read in write.reads:
        await read(cache_world)
        warm = await read(cache_world)
        assert warm.x_cache == "HIT"
        assert marker not in warm.text
    await write.run(cache_world, marker)
    for read in write.reads:
        after = await read(cache_world)
        assert marker in after.text, (write.name, read)
        assert after.x_cache == "MISS"


async def test_an_order_shows_in_cached_stock_at_once(cache_world: CacheWorld) -> None:
    """Placing and cancelling an order move stock: cached reads of it change at once."""
    product = cache_world.reviewed_product
    async with cache_world.db.write() as session:
        row = await session.get(Product, product)
        assert row is not None
        row.stock = 5
        product_changed(session, product)

    async def stock() -> tuple[int, int, str]:
        rest = await cache_world.rest(f"/api/v1/products/{product}", who="staff")
        gql = await cache_world.gql(f'{{ product(id: "{product}") {{ stock }} }}', who="staff")
        return rest.json()["stock"], gql.json()["data"]["product"]["stock"], gql.headers["x-cache"]

    await stock()
    assert (await stock()) == (5, 5, "HIT")
    placed = await cache_world.client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product, "quantity": 2}]},
        headers=cache_world.headers["customer"],
    )
    assert placed.status_code == 201, placed.text
    assert (await stock()) == (3, 3, "MISS")
    assert (await stock())[2] == "HIT"
    cancelled = await cache_world.client.post(
        f"/api/v2/orders/{placed.json()['id']}/cancel", headers=cache_world.headers["customer"]
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await stock()) == (5, 5, "MISS")


async def test_deactivating_a_product_hides_it_at_once(cache_world: CacheWorld) -> None:
    product = cache_world.reviewed_product
    query = f'{{ product(id: "{product}") {{ name }} }}'
    for _ in range(2):
        assert (await cache_world.rest(f"/api/v1/products/{product}")).status_code == 200
        assert (await cache_world.gql(query)).json()["data"]["product"] is not None
    async with cache_world.db.write() as session:
        row = await session.get(Product, product)
        assert row is not None
        row.is_active = False
        product_changed(session, product)
    assert (await cache_world.rest(f"/api/v1/products/{product}")).status_code == 404
    body = (await cache_world.gql(query)).json()
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    staff = await cache_world.rest(f"/api/v1/products/{product}", who="staff")
    assert staff.json()["is_active"] is False


async def test_concurrent_misses_run_the_query_once(cache_world: CacheWorld) -> None:
    query = (
        "query($n: Int!) { products(first: $n) { edges { node { name "
        "category { name } reviews(first: 3) { edges { node { author { name } } } } } } } }"
    )
    gateway = cache_world.gateway
    with gateway.count_statements() as one:
        first = await cache_world.gql(query, {"n": 3})
    assert first.headers["x-cache"] == "MISS"
    assert one.count > 0
    with gateway.count_statements() as many:
        responses = await asyncio.gather(*(cache_world.gql(query, {"n": 5}) for _ in range(8)))
    assert many.count == one.count, [r.headers["x-cache"] for r in responses]
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT"] * 7 + ["MISS"]
    assert len({r.content for r in responses}) == 1


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_workers_share_entries_writes_and_recompute_locks(
    cache_world: CacheWorld,
) -> None:
    settings = cache_settings(cache_world.url, cache_world.tmp, cache_world.setup)
    async with running_gateway(settings, cache_world.gateway.backend) as other_gw:
        other = await build_cache_world(
            other_gw, cache_world.url, cache_world.tmp, cache_world.setup
        )
        # One worker's miss is the other's hit.
        await cache_world.rest("/api/v1/categories")
        assert (await other.rest("/api/v1/categories")).headers["x-cache"] == "HIT"
        # A write in one worker is seen at once by the other.
        for _ in range(2):
            await gql_reviews(other)
        await rest_patch_me(cache_world, "Cleo Across")
        seen = await gql_reviews(other)
        assert ("Cleo Across" in seen.text, seen.x_cache) == (True, "MISS")
        # Concurrent misses in both workers: one recompute in all.
        query = "query($n: Int!) { products(first: $n) { edges { node { name } } } }"
        with cache_world.gateway.count_statements() as one:
            await cache_world.gql(query, {"n": 2})
        with cache_world.gateway.count_statements() as a, other_gw.count_statements() as b:
            responses = await asyncio.gather(
                *((cache_world if i % 2 else other).gql(query, {"n": 4}) for i in range(8))
            )
        assert a.count + b.count == one.count, [r.headers["x-cache"] for r in responses]
        assert sorted(r.headers["x-cache"] for r in responses) == ["HIT"] * 7 + ["MISS"]


@pytest.mark.parametrize("cache_setup", ["memory"], indirect=True)
async def test_redis_down_bypasses_and_answers_correctly(cache_world: CacheWorld) -> None:
    # The world's own gateway is not used: this one's Redis is a closed port.
    settings = cache_settings(
        cache_world.url,
        cache_world.tmp,
        cache_world.setup,
        redis_url="redis://127.0.0.1:1/0",
        cache_trust_seconds=2.0,
    )
    async with running_gateway(settings, cache_world.gateway.backend) as gw:
        down = await build_cache_world(gw, cache_world.url, cache_world.tmp, cache_world.setup)
        began = time.monotonic()
        for _ in range(3):
            response = await down.rest("/api/v1/products?limit=3")
            assert (response.status_code, response.headers["x-cache"]) == (200, "BYPASS")
            assert len(response.json()["data"]) == 3
            seen = await gql_reviews(down)
            assert seen.x_cache == "BYPASS"
        await rest_patch_me(down, "Cleo Offline")
        assert "Cleo Offline" in (await gql_reviews(down)).text
        assert "Cleo Offline" in (await rest_reviews("v1")(down)).text
        assert time.monotonic() - began < 30  # generous: no per-request timeouts piling up


@pytest.mark.parametrize("cache_setup", ["memory"], indirect=True)
async def test_a_redis_that_never_answers_costs_one_timeout_then_bypasses(
    cache_world: CacheWorld,
) -> None:
    """A Redis that accepts and then says nothing (a hung server, a black-holed route):
    the lookup gives up after REDIS_TIMEOUT_SECONDS, the answer is BYPASS, and the
    breaker spares the next requests the wait."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = cache_settings(
        cache_world.url,
        cache_world.tmp,
        cache_world.setup,
        redis_url=f"redis://127.0.0.1:{port}/0",
        redis_timeout_seconds=0.3,
        cache_trust_seconds=2.0,
        rate_limit_enabled=False,
    )
    try:
        async with running_gateway(settings, cache_world.gateway.backend) as gw:
            silent_world = await build_cache_world(
                gw, cache_world.url, cache_world.tmp, cache_world.setup
            )
            began = time.monotonic()
            first = await silent_world.rest("/api/v1/products?limit=3")
            waited = time.monotonic() - began
            assert (first.status_code, first.headers["x-cache"]) == (200, "BYPASS")
            assert 0.3 <= waited < 5, waited
            assert accepted  # it did reach the silent server
            began = time.monotonic()
            for _ in range(5):
                again = await silent_world.rest("/api/v1/products?limit=3")
                assert (again.status_code, again.headers["x-cache"]) == (200, "BYPASS")
            assert time.monotonic() - began < 0.3 * 5  # the breaker: no timeout each time
    finally:
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("cache_setup", ["redis"], indirect=True)
async def test_a_write_redis_missed_is_announced_before_anything_is_served(
    cache_world: CacheWorld,
) -> None:
    store = cache_world.gateway.app.state.cache.store
    for _ in range(2):
        warm = await gql_reviews(cache_world)
    assert warm.x_cache == "HIT"
    reachable = store.client
    gone = connect(Settings(redis_url="redis://127.0.0.1:1/0", redis_timeout_seconds=0.5))
    assert gone is not None
    store.client = Commands(gone)  # Redis gone
    try:
        await rest_patch_me(cache_world, "Cleo Flaky")
        assert store.pending
        seen = await gql_reviews(cache_world)
        assert ("Cleo Flaky" in seen.text, seen.x_cache) == (True, "BYPASS")
    finally:
        await gone.aclose()
        store.client = reachable  # back: the missed bump goes out in the background
    deadline = time.monotonic() + 10
    while True:
        seen = await gql_reviews(cache_world)
        assert "Cleo Flaky" in seen.text
        if seen.x_cache != "BYPASS" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert seen.x_cache == "MISS"
    assert not store.pending
