"""The response cache never answers what the database no longer says, to anyone.

Gateways share one database: one caches (in process or in Redis; with Redis a second
caching instance too), one does not. A seeded random walk interleaves writes of every
kind (through REST v1, v2 or GraphQL, on a caching instance) with reads of every
cacheable page in both interfaces as every kind of reader. Before a write the pages it
may change are read (so that they are cached), after it they are read again; every read
is compared byte for byte with the uncached gateway's answer at that moment
(tests/cache_differential_world.py). An invalidation narrower than what a reader can see
change fails here.

``CACHE_DIFF_SEED`` picks the walk (an integer, or ``random``); a failure names the seed.
``CACHE_DIFF_STEPS`` sets its length.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from data.models import Category, Order, OrderItem, Product, Review
from resolvers.ids import to_global_id
from tests.cache_differential_world import MIN_PRICES, READERS, Pair
from tests.cache_world import CacheSetup, build_cache_world, cache_settings, seeded_url
from tests.conftest import PostgresDatabases, make_settings, running_gateway

DEFAULT_SEED = 21
STEPS = int(os.environ.get("CACHE_DIFF_STEPS", "160"))
WRITE_SHARE = 0.5
VIAS = ("v1", "v2", "graphql")
Action = Callable[[], Awaitable[None]]
# A plan: the products and category slugs the write is about, and the write itself.
Plan = tuple[list[int], list[str], Action]


def the_seed() -> int:
    given = os.environ.get("CACHE_DIFF_SEED", "")
    if given == "random":
        return random.SystemRandom().randrange(10**9)
    return int(given) if given else DEFAULT_SEED


@pytest.fixture
async def pair(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases, cache_setup: CacheSetup
) -> AsyncIterator[Pair]:
    url = await seeded_url(backend, tmp_path, pg_databases)
    cached = cache_settings(url, tmp_path, cache_setup)
    plain = make_settings(url, tmp_path, cache_enabled=False, principal_cache_size=0)
    async with AsyncExitStack() as stack:
        on = await stack.enter_async_context(running_gateway(cached, backend))
        off = await stack.enter_async_context(running_gateway(plain, backend))
        peer = (
            await stack.enter_async_context(running_gateway(cached, backend))
            if cache_setup.store == "redis"
            else None
        )
        # The demo logins and a catalog:read key (and an inactive product, and a review
        # by the customer), then a key without catalog:read.
        made = await build_cache_world(on, url, tmp_path, cache_setup)
        world = Pair(on, off, random.Random(), made.headers, made.user_ids, peer=peer)
        response = await on.client.post(
            "/api/v1/api-keys",
            json={"name": "orders", "scopes": ["orders:read"]},
            headers=world.headers["admin"],
        )
        assert response.status_code == 201, response.text
        world.headers["key_no_catalog"] = {"X-API-Key": response.json()["key"]}
        yield world


# -- the writes -----------------------------------------------------------------------


class Writer:
    """Plans one write of each kind on the current rows, through a random interface."""

    def __init__(self, world: Pair) -> None:
        self.w = world
        self.rng = world.rng
        self.created: set[int] = set()
        self.kinds: Counter[str] = Counter()
        self.serial = 0

    async def refresh(self) -> None:
        """Reads the rows the plans choose from (straight from the database)."""
        async with self.w.on.app.state.db.read() as session:
            # In order: the same seed must draw the same walk.
            rows = (
                await session.execute(
                    select(
                        Product.id,
                        Product.stock,
                        Product.is_active,
                        Product.category_id,
                        Product.price_cents,
                    ).order_by(Product.id)
                )
            ).all()
            self.reviews = (
                await session.execute(
                    select(Review.id, Review.product_id, Review.author_id).order_by(Review.id)
                )
            ).all()
            self.open_orders = (
                await session.execute(
                    select(Order.id, OrderItem.product_id)
                    .join(OrderItem)
                    .where(
                        Order.customer_id == self.w.user_ids["customer"],
                        Order.status.in_(("pending", "paid")),
                    )
                    .order_by(OrderItem.id)
                )
            ).all()
            self.ordered = set((await session.scalars(select(OrderItem.product_id))).all())
            categories = (
                await session.execute(select(Category.id, Category.slug).order_by(Category.id))
            ).all()
        catalog = self.w.catalog
        catalog.gone |= set(catalog.products) - {row.id for row in rows}
        catalog.products = {row.id: row for row in rows}
        catalog.categories = dict(categories)

    def marker(self, what: str) -> str:
        self.serial += 1
        return f"{what} {self.serial}"

    async def rest(self, who: str, method: str, path: str, body: Any = None) -> Any:
        instance, gateway = self.w.writer_instance()
        response = await gateway.client.request(
            method, path, json=body, headers=self.w.headers[who]
        )
        assert response.status_code in (200, 201, 204), f"{method} {path}: {response.text}"
        self.w.history.append(f"{who} on {instance}: {method} {path} {body}")
        return response.json() if response.content else None

    async def gql(self, who: str, query: str, **variables: Any) -> Any:
        instance, gateway = self.w.writer_instance()
        response = await gateway.client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=self.w.headers[who]
        )
        assert response.status_code == 200, response.text
        payload = response.json()
        assert "errors" not in payload, response.text
        self.w.history.append(f"{who} on {instance}: {query} {variables}")
        return payload["data"]

    def active(self, *, stock: Callable[[int], bool] = lambda _: True) -> list[int]:
        return [p.id for p in self.w.catalog.products.values() if p.is_active and stock(p.stock)]

    async def patch_product(self, product_id: int, **changes: Any) -> None:
        """A staff change to one product through v1, v2 or GraphQL."""
        via = self.rng.choice(VIAS)
        cents = changes.pop("price_cents", None)
        if via == "graphql":
            given = {
                {"is_active": "isActive", "category": "categoryId"}.get(k, k): v
                for k, v in changes.items()
            }
            if "categoryId" in given:
                given["categoryId"] = str(given["categoryId"])
            if cents is not None:
                given["price"] = {"amount": f"{cents / 100:.2f}", "currency": "USD"}
            await self.gql(
                "staff",
                "mutation($id: ID!, $input: UpdateProductInput!) "
                "{ updateProduct(id: $id, input: $input) { databaseId } }",
                id=str(product_id),
                input=given,
            )
            return
        if cents is not None:
            changes.update(
                {"price_cents": cents}
                if via == "v1"
                else {"price": {"amount": f"{cents / 100:.2f}", "currency": "USD"}}
            )
        await self.rest("staff", "PATCH", f"/api/{via}/products/{product_id}", changes)

    def product(self, product_id: int, slugs: list[str] | None = None, **changes: Any) -> Plan:
        slug = self.w.slug_of(product_id)
        return (
            [product_id],
            (slugs or []) + ([slug] if slug else []),
            lambda: self.patch_product(product_id, **changes),
        )

    # Each plan_<kind> returns a Plan, or None when the rows do not allow it yet.

    def plan_price(self) -> Plan | None:
        product_id = self.rng.choice(self.w.product_ids())
        threshold = self.rng.choice(MIN_PRICES)
        cents = self.rng.choice(
            (threshold - 1, threshold, threshold + 1, self.rng.randrange(199, 49_999))
        )
        return self.product(product_id, price_cents=cents)

    def plan_name(self) -> Plan | None:
        product_id = self.rng.choice(self.w.product_ids())
        field = self.rng.choice(("name", "description"))
        # Names starting with A or Z move the product to either end of a name sort.
        return self.product(product_id, **{field: self.rng.choice("AZM") + self.marker(field)})

    def plan_stock(self) -> Plan | None:
        product_id = self.rng.choice(self.w.product_ids())
        return self.product(product_id, stock=self.rng.choice((0, 1, 1, 2, 5)))

    def plan_active(self) -> Plan | None:
        product_id = self.rng.choice(self.w.product_ids())
        return self.product(product_id, is_active=not self.w.catalog.products[product_id].is_active)

    def plan_move(self) -> Plan | None:
        product_id = self.rng.choice(self.w.product_ids())
        here = self.w.catalog.products[product_id].category_id
        there = self.rng.choice([c for c in self.w.catalog.categories if c != here])
        return self.product(product_id, [self.w.catalog.categories[there]], category=there)

    def plan_create(self) -> Plan | None:
        category = self.rng.choice(sorted(self.w.catalog.categories))
        sku, name = self.marker("DIFF").replace(" ", "-"), self.marker("New thing")
        cents = self.rng.choice((*MIN_PRICES, 999, 30_000))
        stock, active = self.rng.choice((0, 1, 5)), self.rng.random() < 0.85

        async def create() -> None:
            via = self.rng.choice(VIAS)
            if via == "graphql":
                data = await self.gql(
                    "staff",
                    "mutation($input: CreateProductInput!) "
                    "{ createProduct(input: $input) { databaseId } }",
                    input={
                        "sku": sku,
                        "name": name,
                        "categoryId": str(category),
                        "price": {"amount": f"{cents / 100:.2f}", "currency": "USD"},
                        "stock": stock,
                        "isActive": active,
                    },
                )
                self.created.add(data["createProduct"]["databaseId"])
                return
            body: dict[str, Any] = {
                "sku": sku,
                "name": name,
                "category": category,
                "stock": stock,
                "is_active": active,
            }
            body.update(
                {"price_cents": cents}
                if via == "v1"
                else {"price": {"amount": f"{cents / 100:.2f}", "currency": "USD"}}
            )
            self.created.add((await self.rest("staff", "POST", f"/api/{via}/products", body))["id"])

        return [], [self.w.catalog.categories[category]], create

    def plan_delete(self) -> Plan | None:
        candidates = sorted((self.created & set(self.w.catalog.products)) - self.ordered)
        if not candidates:
            return None
        product_id = self.rng.choice(candidates)

        async def delete() -> None:
            if self.rng.random() < 0.5:
                await self.gql(
                    "staff",
                    "mutation($id: ID!) { deleteProduct(id: $id) { databaseId } }",
                    id=str(product_id),
                )
            else:
                await self.rest(
                    "staff", "DELETE", f"/api/{self.rng.choice(('v1', 'v2'))}/products/{product_id}"
                )

        return [product_id], [self.w.slug_of(product_id) or ""], delete

    def _order(self, product_id: int) -> Plan:
        async def order() -> None:
            via = self.rng.choice(VIAS)
            if via == "graphql":
                await self.gql(
                    "customer",
                    "mutation($input: PlaceOrderInput!) "
                    "{ placeOrder(input: $input) { databaseId } }",
                    input={"items": [{"productId": str(product_id), "quantity": 1}]},
                )
            else:
                await self.rest(
                    "customer",
                    "POST",
                    f"/api/{via}/orders",
                    {"items": [{"product_id": product_id, "quantity": 1}]},
                )

        return [product_id], [self.w.slug_of(product_id) or ""], order

    def plan_order(self) -> Plan | None:
        candidates = self.active(stock=lambda n: n >= 2)
        return self._order(self.rng.choice(candidates)) if candidates else None

    def plan_order_last(self) -> Plan | None:
        candidates = self.active(stock=lambda n: n == 1)
        return self._order(self.rng.choice(candidates)) if candidates else None

    def plan_cancel(self) -> Plan | None:
        if not self.open_orders:
            return None
        sold_out = [
            o
            for o in self.open_orders
            if getattr(self.w.catalog.products.get(o.product_id), "stock", 1) == 0
        ]
        order_id, product_id = self.rng.choice(
            sold_out if sold_out and self.rng.random() < 0.8 else self.open_orders
        )
        if (order_id, product_id) in sold_out:
            self.w.tally["cancels putting a sold-out product back in stock"] += 1

        async def cancel() -> None:
            via = self.rng.choice(VIAS)
            if via == "graphql":
                await self.gql(
                    "customer",
                    "mutation($id: ID!) { cancelOrder(id: $id) { status } }",
                    id=to_global_id("Order", order_id),
                )
            else:
                await self.rest("customer", "POST", f"/api/{via}/orders/{order_id}/cancel")

        return [product_id], [self.w.slug_of(product_id) or ""], cancel

    def plan_review_create(self) -> Plan | None:
        who = self.rng.choice(("customer", "staff"))
        mine = {r.product_id for r in self.reviews if r.author_id == self.w.user_ids[who]}
        candidates = [p for p in self.active() if p not in mine]
        if not candidates:
            return None
        product_id = self.rng.choice(candidates)
        review = {
            "rating": self.rng.randint(1, 5),
            "title": self.marker("Title"),
            "body": self.marker("Body"),
        }

        async def create() -> None:
            if self.rng.random() < 0.4:
                await self.gql(
                    who,
                    "mutation($input: CreateReviewInput!) "
                    "{ createReview(input: $input) { databaseId } }",
                    input={"productId": str(product_id), **review},
                )
            else:
                await self.rest(
                    who,
                    "POST",
                    f"/api/{self.rng.choice(('v1', 'v2'))}/products/{product_id}/reviews",
                    review,
                )

        return [product_id], [], create

    def _own_reviews(self) -> list[tuple[str, Any]]:
        visible = set(self.active())
        return [
            (who, r)
            for r in self.reviews
            for who in ("customer", "staff")
            if r.author_id == self.w.user_ids[who] and (who == "staff" or r.product_id in visible)
        ]

    def plan_review_update(self) -> Plan | None:
        own = self._own_reviews()
        if not own:
            return None
        who, review = self.rng.choice(own)
        change = self.rng.choice(
            (
                {"title": self.marker("Retitled")},
                {"rating": self.rng.randint(1, 5)},
                {"body": self.marker("Rewritten")},
            )
        )

        async def update() -> None:
            if self.rng.random() < 0.4:
                await self.gql(
                    who,
                    "mutation($id: ID!, $input: UpdateReviewInput!) "
                    "{ updateReview(id: $id, input: $input) { databaseId } }",
                    id=to_global_id("Review", review.id),
                    input=change,
                )
            else:
                await self.rest(
                    who,
                    "PATCH",
                    f"/api/{self.rng.choice(('v1', 'v2'))}/reviews/{review.id}",
                    change,
                )

        return [review.product_id], [], update

    def plan_review_delete(self) -> Plan | None:
        own = self._own_reviews()
        if not own:
            return None
        who, review = self.rng.choice(own)
        if self.rng.random() < 0.3:  # staff delete anyone's
            who, review = "staff", self.rng.choice(self.reviews)

        async def delete() -> None:
            if self.rng.random() < 0.4:
                await self.gql(
                    who,
                    "mutation($id: ID!) { deleteReview(id: $id) { databaseId } }",
                    id=to_global_id("Review", review.id),
                )
            else:
                await self.rest(
                    who, "DELETE", f"/api/{self.rng.choice(('v1', 'v2'))}/reviews/{review.id}"
                )

        return [review.product_id], [], delete

    def plan_category_rename(self) -> Plan | None:
        slug = self.rng.choice(sorted(self.w.catalog.categories.values()))
        name = self.rng.choice("AZ") + self.marker("Category")

        async def rename() -> None:
            if self.rng.random() < 0.5:
                await self.gql(
                    "staff",
                    "mutation($s: String!, $n: String!) "
                    "{ updateCategory(slug: $s, input: {name: $n}) { name } }",
                    s=slug,
                    n=name,
                )
            else:
                await self.rest(
                    "staff",
                    "PATCH",
                    f"/api/{self.rng.choice(('v1', 'v2'))}/categories/{slug}",
                    {"name": name},
                )

        products = [
            p.id
            for p in self.w.catalog.products.values()
            if self.w.catalog.categories[p.category_id] == slug
        ]
        return self.rng.sample(products, min(2, len(products))), [slug], rename

    def plan_user_rename(self) -> Plan | None:
        who = self.rng.choice(("customer", "staff"))
        reviewed = sorted(
            {r.product_id for r in self.reviews if r.author_id == self.w.user_ids[who]}
        )
        name = self.marker(f"{who.title()} renamed")

        async def rename() -> None:
            via = self.rng.choice(VIAS)
            if via == "graphql":
                await self.gql(
                    who,
                    "mutation($n: String!) { updateViewer(input: {name: $n}) { name } }",
                    n=name,
                )
            else:
                await self.rest(who, "PATCH", f"/api/{via}/users/me", {"name": name})

        return self.rng.sample(reviewed, min(2, len(reviewed))), [], rename


KINDS = (
    "price",
    "name",
    "stock",
    "active",
    "move",
    "create",
    "delete",
    "order",
    "order_last",
    "cancel",
    "review_create",
    "review_update",
    "review_delete",
    "category_rename",
    "user_rename",
)
# What makes a plan possible when the rows do not allow it yet.
PREPARE = {
    "delete": "create",
    "order": "stock",
    "order_last": "stock",
    "cancel": "order",
    "review_update": "review_create",
    "review_delete": "review_create",
}


async def write(world: Pair, writer: Writer, kind: str) -> None:
    """One write of this kind, with the pages it may change read before and after it."""
    await writer.refresh()
    plan = getattr(writer, f"plan_{kind}")()
    while plan is None:  # make it possible: e.g. a product with one item left to sell
        if kind in ("order", "order_last"):
            product_id = writer.rng.choice(writer.active() or writer.w.product_ids())
            await writer.patch_product(
                product_id, stock=1 if kind == "order_last" else 5, is_active=True
            )
            writer.kinds["stock"] += 1
        else:
            await write(world, writer, PREPARE[kind])
        await writer.refresh()
        plan = getattr(writer, f"plan_{kind}")()
    products, slugs, action = plan
    readers = [
        (page, world.reader(page)) for page in world.related(products, [s for s in slugs if s])
    ]
    for page, who in readers:
        await world.read(page, who)
    await action()
    writer.kinds[kind] += 1
    await writer.refresh()
    for page, who in readers:
        await world.read(page, who)


async def read_batch(world: Pair) -> None:
    for _ in range(6):
        if world.recent and world.rng.random() < 0.5:
            await world.read(*world.rng.choice(world.recent))
        else:
            page = world.random_page()
            await world.read(page, world.reader(page))


async def walk(world: Pair, steps: int) -> Writer:
    writer = Writer(world)
    await writer.refresh()
    writes = round(steps * WRITE_SHARE)
    kinds = [*KINDS, *KINDS]  # every kind at least twice
    kinds += world.rng.choices(KINDS, k=max(0, writes - len(kinds)))
    world.rng.shuffle(kinds)
    plan = [*kinds, *[None] * (steps - len(kinds))]
    world.rng.shuffle(plan)
    for step, kind in enumerate(plan):
        world.history.append(f"-- step {step}: {kind or 'reads'}")
        if kind is None:
            await read_batch(world)
        else:
            await write(world, writer, kind)
    return writer


async def test_cached_answers_match_uncached_ones_through_random_writes(pair: Pair) -> None:
    seed = the_seed()
    pair.rng.seed(seed)
    print(f"CACHE_DIFF_SEED={seed}")
    try:
        writer = await walk(pair, STEPS)
    except AssertionError as exc:
        exc.args = (f"CACHE_DIFF_SEED={seed} (rerun with it): {exc}",)
        raise
    tally = pair.tally
    print(f"seed {seed}: writes {dict(writer.kinds)}")
    print(f"seed {seed}: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())))
    # Not a walk that passes by caching nothing, or by writing nothing.
    assert set(writer.kinds) == set(KINDS), writer.kinds
    assert tally["reads"] >= 4 * STEPS
    assert tally["second HIT"] >= 0.6 * tally["reads"], tally
    assert tally["first HIT"] > 0, tally  # entries kept from an earlier step
    for family in (
        "rest product",
        "rest products",
        "rest reviews",
        "rest category",
        "rest categories",
        "gql product",
        "gql products",
        "gql category",
        "gql categories",
    ):
        assert tally[f"second HIT {family}"] > 0, family
    for visibility in set(READERS.values()):
        assert tally[f"second HIT {visibility}"] > 0, visibility
    assert tally["later list pages"] > 0
    assert tally["status 304"] > 0
    assert tally["cancels putting a sold-out product back in stock"] > 0
