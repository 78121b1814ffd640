"""Writes invalidate only what a reader can see change (``data.changes`` has the tags).

Each test warms cached answers in both interfaces, makes one write through the API, and
reads again: what the write cannot have changed for that reader is still a ``HIT`` with
the same bytes; what it changed is a ``MISS`` that shows the write. (That every cached
answer equals the uncached one after any sequence of writes is
``tests/test_cache_differential.py``'s to prove.)
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from data.models import Product
from tests.cache_world import CacheWorld

DETAIL = (
    "query Detail($id: ID!) { product(id: $id) { databaseId name inStock updatedAt "
    "price { amount } category { name } } }"
)
STAFF_DETAIL = "query StaffDetail($id: ID!) { product(id: $id) { databaseId stock inStock } }"
PAGE = "{ products(first: 100) { edges { node { databaseId name inStock } } } }"
STAFF_PAGE = "{ products(first: 100) { edges { node { databaseId stock } } } }"
WIDE = (
    "query Wide($id: ID!) { product(id: $id) { name category { products(first: 100) "
    "{ edges { node { databaseId name } } } } } }"
)


class Reads:
    """Named reads, each remembered as (X-Cache, body) every time it is made."""

    def __init__(self, world: CacheWorld) -> None:
        self.world = world

    async def get(self, name: str) -> tuple[str, str]:
        kind, who, what, arg = self.plan[name]
        if kind == "rest":
            response = await self.world.rest(what.format(arg), who)
        else:
            response = await self.world.gql(what, {"id": str(arg)} if arg else None, who)
            assert "errors" not in response.json(), response.text
        assert response.status_code == 200, response.text
        return response.headers["x-cache"], response.text

    async def warm(self, *names: str) -> dict[str, str]:
        """Reads each twice; the second must be a hit. Returns the bodies."""
        bodies = {}
        for name in names:
            await self.get(name)
            x_cache, bodies[name] = await self.get(name)
            assert x_cache == "HIT", name
        return bodies

    async def kept(self, before: dict[str, str], *names: str) -> None:
        """Each still a hit, with the bytes it had before the write."""
        for name in names:
            assert await self.get(name) == ("HIT", before[name]), name

    async def moved(self, before: dict[str, str], *names: str) -> None:
        """Each recomputed (a miss) and different from before the write."""
        for name in names:
            x_cache, body = await self.get(name)
            assert x_cache == "MISS", name
            assert body != before[name], name

    plan: dict[str, tuple[str, str, str, Any]]


def reads_for(world: CacheWorld, a: int, b: int) -> Reads:
    reads = Reads(world)
    reads.plan = {
        "anon rest a": ("rest", "anonymous", "/api/v1/products/{}", a),
        "anon rest v2 a": ("rest", "anonymous", "/api/v2/products/{}", a),
        "anon rest b": ("rest", "anonymous", "/api/v1/products/{}", b),
        "anon gql a": ("gql", "anonymous", DETAIL, a),
        "anon gql b": ("gql", "anonymous", DETAIL, b),
        "customer gql a": ("gql", "customer", DETAIL, a),
        "customer rest a": ("rest", "customer", "/api/v2/products/{}", a),
        "anon page": ("gql", "anonymous", PAGE, None),
        "anon rest list": (
            "rest",
            "anonymous",
            "/api/v2/products?limit=100&fields=id,name,in_stock",
            None,
        ),
        "staff gql a": ("gql", "staff", STAFF_DETAIL, a),
        "staff rest a": ("rest", "staff", "/api/v1/products/{}", a),
        "staff rest b": ("rest", "staff", "/api/v1/products/{}", b),
        "key rest a": ("rest", "key_catalog_read", "/api/v1/products/{}", a),
        "staff page": ("gql", "staff", STAFF_PAGE, None),
        "staff gql a without stock": ("gql", "staff", DETAIL, a),
        "anon wide b": ("gql", "anonymous", WIDE, b),
    }
    return reads


async def two_products(world: CacheWorld, stock: int) -> tuple[int, int]:
    """Two active products of one category, ``a`` and ``b``, each with ``stock`` items
    (set before any read)."""
    async with world.db.write() as session:
        first = await session.scalar(
            select(Product).where(Product.is_active.is_(True)).order_by(Product.id).limit(1)
        )
        assert first is not None
        found = (
            await session.scalars(
                select(Product)
                .where(Product.is_active.is_(True), Product.category_id == first.category_id)
                .order_by(Product.id)
                .limit(2)
            )
        ).all()
        assert len(found) == 2
        for product in found:
            product.stock = stock
        return found[0].id, found[1].id


async def order(world: CacheWorld, product: int, quantity: int) -> int:
    response = await world.client.post(
        "/api/v1/orders",
        json={"items": [{"product_id": product, "quantity": quantity}]},
        headers=world.headers["customer"],
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def field(text: str, name: str) -> Any:
    return httpx.Response(200, text=text).json()["data"]["product"][name]


async def test_an_order_that_leaves_stock_changes_only_what_stock_readers_see(
    cache_world: CacheWorld,
) -> None:
    a, b = await two_products(cache_world, stock=3)
    reads = reads_for(cache_world, a, b)
    kept = (
        "anon rest a",
        "anon rest v2 a",
        "anon gql a",
        "customer gql a",
        "customer rest a",
        "anon page",
        "anon rest list",
        "staff gql a without stock",
        "staff rest b",
        "anon wide b",
    )
    moved = ("staff gql a", "staff rest a", "staff page")
    before = await reads.warm(*kept, *moved, "key rest a")

    await order(cache_world, a, 1)

    await reads.kept(before, *kept)
    await reads.moved(before, *moved)
    # A catalog:read key shares staff's class: staff's fresh answer serves it.
    assert await reads.get("key rest a") == await reads.get("staff rest a")
    assert field((await reads.get("staff gql a"))[1], "stock") == 2
    # Stock moves are not edits of the listing.
    assert field(before["anon gql a"], "updatedAt") == field(
        (await reads.get("anon gql a"))[1], "updatedAt"
    )


async def test_the_last_item_flips_in_stock_for_everyone_and_a_cancel_flips_it_back(
    cache_world: CacheWorld,
) -> None:
    a, b = await two_products(cache_world, stock=2)
    reads = reads_for(cache_world, a, b)
    mine = (
        "anon rest a",
        "anon gql a",
        "customer gql a",
        "anon page",
        "anon rest list",
        "staff gql a",
        "key rest a",
    )
    others = ("anon rest b", "anon gql b", "staff rest b")
    before = await reads.warm(*mine, *others)

    order_id = await order(cache_world, a, 2)
    await reads.moved(before, *mine)
    await reads.kept(before, *others)
    assert field((await reads.get("anon gql a"))[1], "inStock") is False

    await reads.warm(*mine)
    response = await cache_world.client.post(
        f"/api/v1/orders/{order_id}/cancel", headers=cache_world.headers["customer"]
    )
    assert response.status_code == 200, response.text
    for name in mine:
        x_cache, body = await reads.get(name)
        assert x_cache == "MISS", name
        assert body == before[name], name  # back where it was, stock included
    await reads.kept(before, *others)


async def test_a_price_change_spares_other_products_pages_but_not_lists(
    cache_world: CacheWorld,
) -> None:
    a, b = await two_products(cache_world, stock=5)
    reads = reads_for(cache_world, a, b)
    changed = (
        "anon rest a",
        "anon rest v2 a",
        "anon gql a",
        "customer gql a",
        "anon page",
        "staff rest a",
        "anon wide b",
    )
    spared = ("anon rest b", "anon gql b", "staff rest b")
    before = await reads.warm(*changed, *spared)

    response = await cache_world.client.patch(
        f"/api/v1/products/{a}",
        json={"price_cents": 123_456, "name": "Renamed A"},
        headers=cache_world.headers["staff"],
    )
    assert response.status_code == 200, response.text

    await reads.moved(before, *changed)
    await reads.kept(before, *spared)
    assert field((await reads.get("anon gql a"))[1], "price")["amount"] == "1234.56"


async def test_a_staff_stock_edit_is_seen_by_stock_readers_only(cache_world: CacheWorld) -> None:
    a, b = await two_products(cache_world, stock=5)
    reads = reads_for(cache_world, a, b)
    kept = ("anon rest a", "anon gql a", "anon page", "staff gql a without stock")
    moved = ("staff gql a", "staff rest a", "staff page")
    before = await reads.warm(*kept, *moved)
    response = await cache_world.client.patch(
        f"/api/v2/products/{a}", json={"stock": 7}, headers=cache_world.headers["staff"]
    )
    assert response.status_code == 200, response.text
    await reads.kept(before, *kept)
    await reads.moved(before, *moved)
    assert field((await reads.get("staff gql a"))[1], "stock") == 7


async def test_a_category_rename_reaches_every_product_page(cache_world: CacheWorld) -> None:
    a, b = await two_products(cache_world, stock=5)
    reads = reads_for(cache_world, a, b)
    before = await reads.warm("anon gql a", "anon gql b", "anon page")
    category = httpx.Response(200, text=before["anon gql a"]).json()
    category_id = (await cache_world.rest(f"/api/v1/products/{a}")).json()["category"]
    listed = await cache_world.rest("/api/v1/categories?limit=100")
    slug = next(c["slug"] for c in listed.json()["data"] if c["id"] == category_id)
    response = await cache_world.client.patch(
        f"/api/v1/categories/{slug}",
        json={"name": "Renamed Category"},
        headers=cache_world.headers["staff"],
    )
    assert response.status_code == 200, response.text
    x_cache, body = await reads.get("anon gql a")
    assert x_cache == "MISS"
    assert field(body, "category")["name"] == "Renamed Category"
    assert category["data"]["product"]["category"]["name"] != "Renamed Category"
    assert (await reads.get("anon gql b"))[0] == "MISS"  # every entry reads ``catalog``


async def test_a_new_product_joins_the_lists_and_its_deletion_drops_its_pages(
    cache_world: CacheWorld,
) -> None:
    a, b = await two_products(cache_world, stock=5)
    reads = reads_for(cache_world, a, b)
    category = (await cache_world.rest(f"/api/v1/products/{a}")).json()["category"]
    before = await reads.warm("anon page", "anon rest b")
    created = await cache_world.client.post(
        "/api/v1/products",
        json={
            "sku": "TAG-NEW-1",
            "name": "Brand New",
            "price_cents": 500,
            "category": category,
            "stock": 4,
        },
        headers=cache_world.headers["staff"],
    )
    assert created.status_code == 201, created.text
    new = created.json()["id"]
    x_cache, body = await reads.get("anon page")
    assert x_cache == "MISS"
    assert f'"databaseId":{new},' in body
    assert await reads.get("anon rest b") == ("HIT", before["anon rest b"])

    reads.plan["anon rest new"] = ("rest", "anonymous", "/api/v1/products/{}", new)
    reads.plan["anon gql new"] = ("gql", "anonymous", DETAIL, new)
    await reads.warm("anon rest new", "anon gql new", "anon page")
    deleted = await cache_world.client.delete(
        f"/api/v1/products/{new}", headers=cache_world.headers["staff"]
    )
    assert deleted.status_code == 204, deleted.text
    assert (await cache_world.rest(f"/api/v1/products/{new}")).status_code == 404
    gone = await cache_world.gql(DETAIL, {"id": str(new)})
    assert gone.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    x_cache, body = await reads.get("anon page")
    assert x_cache == "MISS"
    assert body == before["anon page"]
