"""Gateways over one database, the response cache on in one (two with Redis) and off in
another, and the pages the cache differential test reads through them.

Every read is sent three times with one request id: through the caching gateway, through
the uncached one, and through a caching one again (with Redis, the other instance). The
answers must be the same bytes, with the same status and ``Content-Type``, ``Link``,
``Cache-Control``, ``Vary`` and, where both have one, ``ETag``: a cached answer is only
ever a copy of what the database says at that moment.
"""

from __future__ import annotations

import json
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from tests.conftest import Gateway

# Who reads: one or two of each visibility class (data.policy.visibility_class).
READERS = {
    "anonymous": "anonymous",
    "customer": "authenticated",
    "key_no_catalog": "authenticated",
    "staff": "catalog-full",
    "key_catalog_read": "catalog-full",
}
COMPARED_HEADERS = ("content-type", "link", "cache-control", "vary")
MIN_PRICES = (10_000, 25_000)  # the min_price pages: price writes move products across them
REST_SORTS = ("-created_at", "created_at", "price", "-price", "name", "-name")
GQL_ORDERS: tuple[dict[str, str] | None, ...] = (
    None,
    {"field": "PRICE", "direction": "ASC"},
    {"field": "PRICE", "direction": "DESC"},
    {"field": "NAME", "direction": "ASC"},
    {"field": "CREATED_AT", "direction": "DESC"},
)
PRODUCT_SELECTIONS = (
    "databaseId name price { amount currency } inStock",
    "databaseId sku name description isActive inStock updatedAt category { slug name }",
    "databaseId averageRating reviews(first: 5) { totalCount "
    "edges { node { databaseId title rating body author { name } } } }",
    # Staff and catalog:read keys only (anyone else gets an error, which is not cached).
    "databaseId name stock inStock isActive price { amount }",
)
V2_FIELDS = ("id,name,price,in_stock", "id,stock,is_active,category,updated_at")
GQL_PRODUCT = "query($id: ID) {{ product(id: $id) {{ {sel} }} }}"
GQL_PRODUCTS = (
    "query($first: Int, $after: String, $filter: ProductFilterInput, $orderBy: ProductOrder) "
    "{{ products(first: $first, after: $after, filter: $filter, orderBy: $orderBy) "
    "{{ totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {sel} }} }} }} }}"
)
GQL_CATEGORY = (
    "query($slug: String!, $first: Int, $filter: ProductFilterInput, $orderBy: ProductOrder) "
    "{{ category(slug: $slug) {{ databaseId slug name products(first: $first, filter: $filter, "
    "orderBy: $orderBy) {{ totalCount edges {{ node {{ {sel} }} }} }} }} }}"
)
GQL_CATEGORIES = (
    "{ categories(first: 20) { totalCount edges { node { slug name "
    "products(first: 3) { totalCount edges { node { name inStock } } } } } } }"
)


@dataclass(frozen=True)
class Page:
    """One cacheable request: a REST GET, or a GraphQL query by POST or GET."""

    family: str  # for the tallies: "rest product", "gql products", ...
    path: str  # the REST path and query, or /graphql
    query: str = ""
    variables: str = ""  # JSON, so that a page is hashable
    graphql_get: bool = False
    later: bool = False  # a list page after the first (a cursor)

    def __str__(self) -> str:
        if not self.query:
            return f"GET {self.path}"
        method = "GET" if self.graphql_get else "POST"
        return f"{method} /graphql {self.query} variables={self.variables}"


def gql_page(family: str, query: str, variables: dict[str, Any], rng: random.Random) -> Page:
    return Page(
        family,
        "/graphql",
        query,
        json.dumps(variables, sort_keys=True),
        graphql_get=rng.random() < 0.2,
        later=variables.get("after") is not None,
    )


class Mismatch(AssertionError):
    pass


@dataclass
class Catalog:
    """What the test knows of the rows, read from the database before each step."""

    products: dict[int, Any] = field(default_factory=dict)  # id → row (stock, price, ...)
    categories: dict[int, str] = field(default_factory=dict)  # id → slug
    gone: set[int] = field(default_factory=set)  # deleted product ids: still read


@dataclass
class Pair:
    on: Gateway
    off: Gateway
    rng: random.Random
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    # With Redis, a second caching instance: it answers the second read and takes half
    # of the writes, so an entry must follow a write made on another instance.
    peer: Gateway | None = None
    catalog: Catalog = field(default_factory=Catalog)
    recent: deque[tuple[Page, str]] = field(default_factory=lambda: deque(maxlen=60))
    etags: dict[tuple[Page, str], str] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)
    followed: deque[Page] = field(default_factory=lambda: deque(maxlen=30))  # next pages
    history: deque[str] = field(default_factory=lambda: deque(maxlen=12))
    requests: int = 0

    # -- reading ----------------------------------------------------------------------

    async def _send(
        self, gateway: Gateway, page: Page, who: str, extra: dict[str, str]
    ) -> httpx.Response:
        headers = {**self.headers[who], **extra}
        if not page.query:
            return await gateway.client.get(page.path, headers=headers)
        if page.graphql_get:
            return await gateway.client.get(
                "/graphql",
                headers=headers,
                params={"query": page.query, "variables": page.variables},
            )
        body = orjson.dumps({"query": page.query, "variables": json.loads(page.variables)})
        return await gateway.client.post(
            "/graphql", content=body, headers={**headers, "Content-Type": "application/json"}
        )

    async def read(self, page: Page, who: str) -> httpx.Response:
        """The page three times (cached, uncached, cached); the uncached answer back."""
        self.requests += 1
        extra = {"X-Request-ID": f"diff-{self.requests}"}
        etag = self.etags.get((page, who))
        if etag is not None and self.rng.random() < 0.25:
            extra["If-None-Match"] = etag  # the 304 must follow the data too
            self.tally["conditional reads"] += 1
        first = await self._send(self.on, page, who, extra)
        plain = await self._send(self.off, page, who, extra)
        second = await self._send(self.peer or self.on, page, who, extra)
        for label, cached in (("first", first), ("second", second)):
            self._compare(page, who, label, cached, plain)
        self.tally["reads"] += 1
        self.tally["later list pages"] += page.later
        self.tally[f"reads {READERS[who]}"] += 1
        for label, cached in (("first", first), ("second", second)):
            if cached.headers.get("x-cache") == "HIT":
                self.tally[f"{label} HIT"] += 1
                self.tally[f"{label} HIT {page.family}"] += 1
                self.tally[f"{label} HIT {READERS[who]}"] += 1
        if plain.status_code != 200:
            self.tally[f"status {plain.status_code}"] += 1
        elif page.query and b'"errors":' in plain.content:
            self.tally[f"errors {page.family}"] += 1
        if "etag" in plain.headers:
            self.etags[(page, who)] = plain.headers["etag"]
        self.recent.append((page, who))
        self._follow(page, who, plain)
        return plain

    def _compare(
        self, page: Page, who: str, label: str, cached: httpx.Response, plain: httpx.Response
    ) -> None:
        problems = []
        if cached.status_code != plain.status_code:
            problems.append(f"status {cached.status_code} != uncached {plain.status_code}")
        if cached.content != plain.content:
            a, b = cached.text, plain.text
            at = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            start = max(0, at - 300)
            problems.append(
                f"body, from character {start} (they differ at {at}):\n"
                f"    cached:   {a[start : at + 300]}\n"
                f"    uncached: {b[start : at + 300]}"
            )
        for name in COMPARED_HEADERS:
            if cached.headers.get(name) != plain.headers.get(name):
                problems.append(
                    f"{name}: {cached.headers.get(name)!r} != {plain.headers.get(name)!r}"
                )
        if (
            "etag" in cached.headers
            and "etag" in plain.headers
            and cached.headers["etag"] != plain.headers["etag"]
        ):
            problems.append(f"etag {cached.headers['etag']} != {plain.headers['etag']}")
        if problems:
            raise Mismatch(
                f"{label} cached read (X-Cache: {cached.headers.get('x-cache')}) differs from "
                f"the uncached one\n  as {who} ({READERS[who]}): {page}\n  "
                + "\n  ".join(problems)
                + "\n  last steps:\n    "
                + "\n    ".join(self.history)
            )

    def _follow(self, page: Page, who: str, plain: httpx.Response) -> None:
        """Keeps the next page of a list (its cursor) among the pages to read again."""
        if plain.status_code != 200 or page.family not in ("rest products", "gql products"):
            return
        if page.query:
            info = ((plain.json().get("data") or {}).get("products") or {}).get("pageInfo", {})
            if not info.get("hasNextPage"):
                return
            variables = {**json.loads(page.variables), "after": info["endCursor"]}
            nxt = gql_page(page.family, page.query, variables, self.rng)
        else:
            link = plain.headers.get("link")
            if not link:
                return
            nxt = Page(
                page.family, httpx.URL(link[1 : link.index(">")]).raw_path.decode(), later=True
            )
        self.followed.append(nxt)
        if self.rng.random() < 0.5:
            self.recent.append((nxt, who))

    # -- drawing pages ----------------------------------------------------------------

    def product_ids(self) -> list[int]:
        return sorted(self.catalog.products)

    def slug_of(self, product_id: int) -> str | None:
        row = self.catalog.products.get(product_id)
        return None if row is None else self.catalog.categories.get(row.category_id)

    def product_pages(self, product_id: int) -> list[Page]:
        rng = self.rng
        v = rng.choice(("v1", "v2"))
        detail = f"/api/{v}/products/{product_id}"
        if v == "v2" and rng.random() < 0.4:
            detail += "?fields=" + rng.choice(V2_FIELDS)
        return [
            Page("rest product", detail),
            Page(
                "rest reviews",
                f"/api/{rng.choice(('v1', 'v2'))}/products/{product_id}"
                f"/reviews?limit={rng.choice((3, 10))}",
            ),
            gql_page(
                "gql product",
                GQL_PRODUCT.format(sel=rng.choice(PRODUCT_SELECTIONS)),
                {"id": str(product_id)},
                rng,
            ),
        ]

    def list_pages(self, slug: str | None, price: int | None) -> list[Page]:
        """Lists a product with this category and price is in, or could move into."""
        rng = self.rng
        pages = []
        for _ in range(2):
            params: dict[str, Any] = {"limit": rng.choice((5, 10, 30))}
            gfilter: dict[str, Any] = {}
            if slug is not None and rng.random() < 0.6:
                params["category"] = gfilter["category"] = slug
            if rng.random() < 0.4:
                near = min(MIN_PRICES, key=lambda p: abs(p - price)) if price else None
                params["min_price"] = gfilter["minPrice"] = near or rng.choice(MIN_PRICES)
            if rng.random() < 0.4:
                params["in_stock"] = rng.choice(("true", "false"))
                gfilter["inStock"] = params["in_stock"] == "true"
            if rng.random() < 0.7:
                params["sort"] = rng.choice(REST_SORTS)
            v = rng.choice(("v1", "v2"))
            if v == "v2" and rng.random() < 0.3:
                params["fields"] = rng.choice(V2_FIELDS)
            pages.append(Page("rest products", f"/api/{v}/products?{urlencode(params)}"))
            variables = {
                "first": params["limit"],
                "filter": gfilter or None,
                "orderBy": rng.choice(GQL_ORDERS),
            }
            sel = rng.choice(PRODUCT_SELECTIONS)
            if slug is not None and rng.random() < 0.4:
                gfilter.pop("category", None)
                variables.update(slug=slug, filter=gfilter or None)
                pages.append(gql_page("gql category", GQL_CATEGORY.format(sel=sel), variables, rng))
            else:
                pages.append(
                    gql_page(
                        "gql products",
                        GQL_PRODUCTS.format(sel=sel),
                        {"after": None, **variables},
                        rng,
                    )
                )
        return pages

    def category_pages(self, slug: str) -> list[Page]:
        v = self.rng.choice(("v1", "v2"))
        return [
            Page("rest category", f"/api/{v}/categories/{slug}"),
            Page("rest categories", f"/api/{v}/categories?limit=20"),
            gql_page("gql categories", GQL_CATEGORIES, {}, self.rng),
        ]

    def random_page(self) -> Page:
        rng = self.rng
        ids = self.product_ids()
        product = rng.choice(ids + sorted(self.catalog.gone) + [10**6])
        slug = rng.choice(sorted(self.catalog.categories.values()) + ["no-such-category"])
        pool = self.product_pages(product) + self.list_pages(slug, None) + self.category_pages(slug)
        return rng.choice(pool)

    def related(self, product_ids: list[int], slugs: list[str]) -> list[Page]:
        """Pages that show what a write is about to change (and a few that do not)."""
        pages: list[Page] = []
        for product_id in product_ids:
            pages += self.product_pages(product_id)
            row = self.catalog.products.get(product_id)
            pages += self.list_pages(
                self.slug_of(product_id), None if row is None else row.price_cents
            )
        for slug in slugs:
            pages += self.category_pages(slug)
        pages = self.rng.sample(pages, min(len(pages), 6)) + [self.random_page()]
        if self.followed:  # a list's later page: a write can move rows across pages
            pages.append(self.rng.choice(self.followed))
        return pages

    def writer_instance(self) -> tuple[str, Gateway]:
        """The caching instance a write goes through (the same draws with or without
        a peer, so one seed walks the same way on every store)."""
        if self.rng.random() < 0.5 and self.peer is not None:
            return "peer", self.peer
        return "on", self.on

    def reader(self, page: Page) -> str:
        """Who reads the page: mostly staff and catalog:read keys where it shows stock."""
        if "stock " in page.query and self.rng.random() < 0.9:
            return self.rng.choice(tuple(r for r, c in READERS.items() if c == "catalog-full"))
        return self.rng.choice(tuple(READERS))
