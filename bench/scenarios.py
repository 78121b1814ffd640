"""What the benchmark asks: the exact documents and requests, for the gateway and the floor.

Real traffic asks many pages: every scenario draws its arguments over the whole seeded
catalog (``Catalog``: every active product id, every category slug, cursors of real rows
under each sort, prices), and the floor gets the very same arguments, in its own
encoding. ``one=True`` gives each scenario a single request instead: the best case, one
page asked again and again, reported beside the varied run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CATALOG_PAGE = (
    "query CatalogPage($after: String, $orderBy: ProductOrder, "
    + """\
$filter: ProductFilterInput) {
  products(first: 20, after: $after, orderBy: $orderBy, filter: $filter) {
    {total}edges {
      cursor
      node {
        id databaseId sku name
        price { amount currency }
        inStock averageRating
        category { id name slug }
        reviews(first: 3) {
          edges { cursor node { id rating title author { id name } } }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""
)
# The same pages with the list's total: what a page showing "1,234 products" asks.
CATALOG_COUNT_PAGE = CATALOG_PAGE.replace("CatalogPage", "CatalogCountPage").replace(
    "{total}", "totalCount\n    "
)
CATALOG_PAGE = CATALOG_PAGE.replace("{total}", "")

PRODUCT_PAGE = """query ProductPage($id: ID!) {
  product(id: $id) {
    id databaseId sku name description
    price { amount currency }
    inStock averageRating createdAt
    category { id name slug }
    reviews(first: 10) {
      totalCount
      edges { cursor node { id rating title body createdAt author { id name } } }
    }
  }
}"""

CATEGORY_PAGE = """query CategoryPage($slug: String!, $after: String) {
  category(slug: $slug) {
    id name slug
    products(first: 20, after: $after) {
      {total}edges { cursor node { id databaseId name price { amount currency } inStock } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""
CATEGORY_COUNT_PAGE = CATEGORY_PAGE.replace("CategoryPage", "CategoryCountPage").replace(
    "{total}", "totalCount\n      "
)
CATEGORY_PAGE = CATEGORY_PAGE.replace("{total}", "")

# The sorts a list page is asked in: REST names, and GraphQL's ProductOrder for each.
SORTS = {
    "-created_at": ("CREATED_AT", "DESC"),
    "price": ("PRICE", "ASC"),
    "-price": ("PRICE", "DESC"),
    "name": ("NAME", "ASC"),
}
VARIED = 2_000  # list-page requests drawn per scenario (detail pages: every product)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, object] | None = None
    headers: tuple[tuple[str, str], ...] = ()  # a bearer token or an API key


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    gateway: list[Request]
    floor: list[Request] | None  # None: compared with the ceiling instead
    graphql: bool = False


@dataclass
class Catalog:
    """The seeded rows the arguments are drawn from."""

    product_ids: list[int]  # active products, the one with the most reviews first
    slugs: list[str]
    cursors: dict[str, list[str]]  # real rows' cursors by sort
    prices: list[int]
    # Cursors of real rows of each category, in a category page's order (newest first).
    category_cursors: dict[str, list[str]] = field(default_factory=dict)


def gid(type_name: str, database_id: int) -> str:
    from resolvers.ids import to_global_id

    return to_global_id(type_name, database_id)


def _list_pages(catalog: Catalog, rng: random.Random, count: int) -> list[dict[str, Any]]:
    """List-page arguments: a sort, an ``after`` cursor of it half the time, a minimum
    price a third of the time."""
    pages = []
    for _ in range(count):
        sort = rng.choice(list(SORTS))
        page: dict[str, Any] = {"sort": sort}
        if rng.random() < 0.5 and catalog.cursors.get(sort):
            page["after"] = rng.choice(catalog.cursors[sort])
        if rng.random() < 0.33:
            page["min_price"] = rng.choice(catalog.prices)
        pages.append(page)
    return pages


def _category_pages(
    catalog: Catalog, slugs: list[str], rng: random.Random, one: bool
) -> list[dict[str, Any]]:
    """Category-page arguments: every slug, then pages of random slugs, half of them
    after a cursor of one of that category's rows (``one``: the first slug's first page)."""
    if one:
        return [{"slug": slugs[0]}]
    pages: list[dict[str, Any]] = [{"slug": s} for s in slugs]
    for _ in range(max(0, VARIED - len(pages))):
        page: dict[str, Any] = {"slug": rng.choice(slugs)}
        cursors = catalog.category_cursors.get(page["slug"])
        if cursors and rng.random() < 0.5:
            page["after"] = rng.choice(cursors)
        pages.append(page)
    return pages


def _category_requests(page: dict[str, Any], count: bool = False) -> tuple[Request, Request]:
    name = "CategoryCountPage" if count else "CategoryPage"
    body = {
        "query": CATEGORY_COUNT_PAGE if count else CATEGORY_PAGE,
        "operationName": name,
        "variables": dict(page),
    }
    path = "/graphql/category-count" if count else "/graphql/category"
    return Request("POST", "/graphql", body), Request("POST", path, body)


def _rest_category(page: dict[str, Any]) -> Request:
    query = f"/api/v2/products?category={page['slug']}&limit=20"
    if "after" in page:
        query += f"&cursor={page['after']}"
    return Request("GET", query)


def _catalog_requests(page: dict[str, Any], count: bool = False) -> tuple[Request, Request]:
    field, direction = SORTS[page["sort"]]
    variables: dict[str, Any] = {"orderBy": {"field": field, "direction": direction}}
    if "after" in page:
        variables["after"] = page["after"]
    if "min_price" in page:
        variables["filter"] = {"minPrice": page["min_price"]}
    if count:
        body = {
            "query": CATALOG_COUNT_PAGE,
            "operationName": "CatalogCountPage",
            "variables": variables,
        }
        return Request("POST", "/graphql", body), Request("POST", "/graphql/catalog-count", body)
    body = {"query": CATALOG_PAGE, "operationName": "CatalogPage", "variables": variables}
    return Request("POST", "/graphql", body), Request("POST", "/graphql/catalog", body)


def _rest_list(page: dict[str, Any]) -> Request:
    query = f"/api/v2/products?limit=20&sort={page['sort']}"
    if "min_price" in page:
        query += f"&min_price={page['min_price']}"
    if "after" in page:
        query += f"&cursor={page['after']}"
    return Request("GET", query)


def scenarios(catalog: Catalog, *, one: bool = False, seed: int = 7) -> list[Scenario]:
    """Every scenario, its arguments over the catalog (``one``: the first of each only)."""
    rng = random.Random(seed)
    ids = catalog.product_ids[:1] if one else catalog.product_ids
    slugs = catalog.slugs[:1] if one else catalog.slugs
    pages = [{"sort": "-created_at"}] if one else _list_pages(catalog, rng, VARIED)
    product = {"query": PRODUCT_PAGE, "operationName": "ProductPage"}
    category_pages = _category_pages(catalog, slugs, rng, one)
    categories = [_category_requests(page) for page in category_pages]
    count_categories = [_category_requests(page, count=True) for page in category_pages]
    lists = [_catalog_requests(page) for page in pages]
    count_lists = [_catalog_requests(page, count=True) for page in pages]
    rest_lists = [_rest_list(page) for page in pages]
    return [
        Scenario(
            "catalog",
            "GraphQL catalog page (sorts, after cursors, minPrice)",
            [g for g, _ in lists],
            [f for _, f in lists],
            graphql=True,
        ),
        Scenario(
            "detail",
            "GraphQL product detail page",
            [
                Request("POST", "/graphql", {**product, "variables": {"id": gid("Product", i)}})
                for i in ids
            ],
            [Request("POST", "/graphql/product", {**product, "variables": {"id": i}}) for i in ids],
            graphql=True,
        ),
        Scenario(
            "category",
            "GraphQL category page (slugs, after cursors)",
            [g for g, _ in categories],
            [f for _, f in categories],
            graphql=True,
        ),
        Scenario(
            "catalog-count",
            "GraphQL catalog page with totalCount",
            [g for g, _ in count_lists],
            [f for _, f in count_lists],
            graphql=True,
        ),
        Scenario(
            "category-count",
            "GraphQL category page with totalCount",
            [g for g, _ in count_categories],
            [f for _, f in count_categories],
            graphql=True,
        ),
        Scenario(
            "rest-list",
            "REST GET /api/v2/products (sorts, cursors, min_price)",
            rest_lists,
            rest_lists,
        ),
        Scenario(
            "rest-detail",
            "REST GET /api/v1/products/{id}",
            [Request("GET", f"/api/v1/products/{i}") for i in ids],
            [Request("GET", f"/api/v1/products/{i}") for i in ids],
        ),
        Scenario(
            "rest-category",
            "REST GET /api/v2/products?category={slug} (slugs, cursors)",
            [_rest_category(page) for page in category_pages],
            [_rest_category(page) for page in category_pages],
        ),
        Scenario(
            "cached", "GraphQL catalog page, response cache warm", [lists[0][0]], None, graphql=True
        ),
        Scenario(
            "health",
            "GET /health/live",
            [Request("GET", "/health/live")],
            [Request("GET", "/health/live")],
        ),
    ]


NAMES = (
    "catalog",
    "detail",
    "category",
    "catalog-count",
    "category-count",
    "rest-list",
    "rest-detail",
    "rest-category",
    "cached",
    "health",
)
VARIES = frozenset(NAMES) - {"cached", "health"}  # the scenarios with a one-argument twin
# Read again as a customer (bearer token) and as a partner (catalog:read API key), beside
# the anonymous reads: "detail [token]", "detail [key]", ...
SIGNED_IN = ("catalog", "detail", "rest-list", "rest-detail")


def as_principal(requests: list[Request], headers: dict[str, str]) -> list[Request]:
    """The same requests, sent with ``headers`` (a token or a key)."""
    extra = tuple(headers.items())
    return [Request(r.method, r.path, r.body, r.headers + extra) for r in requests]


async def load_catalog(connection: Any) -> Catalog:
    """Arguments drawn from the seeded rows (``connection``: asyncpg)."""
    from data.pagination import encode_cursor
    from data.services.products import PRODUCT_SORTS

    ids = [
        r["id"]
        for r in await connection.fetch(
            "SELECT p.id FROM products p LEFT JOIN reviews r ON r.product_id = p.id "
            "WHERE p.is_active GROUP BY p.id ORDER BY count(r.id) DESC, p.id"
        )
    ]
    slugs = [
        r["slug"]
        for r in await connection.fetch(
            "SELECT slug FROM categories ORDER BY (SELECT count(*) FROM products p "
            "WHERE p.category_id = categories.id AND p.is_active) DESC, slug"
        )
    ]
    await connection.execute("SELECT setseed(0.42)")  # the same rows run after run
    rows = await connection.fetch(
        "SELECT id, created_at, price_cents, name FROM products WHERE is_active "
        "ORDER BY random() LIMIT 500"
    )
    cursors: dict[str, list[str]] = {}
    for name in SORTS:
        sort = PRODUCT_SORTS[name]
        values = {
            "created_at": lambda r: (_naive(r["created_at"]), r["id"]),
            "price": lambda r: (r["price_cents"], r["id"]),
            "name": lambda r: (r["name"], r["id"]),
        }[name.lstrip("-")]
        cursors[name] = [encode_cursor("products", sort, values(r)) for r in rows]
    prices = sorted({r["price_cents"] for r in rows})
    newest = PRODUCT_SORTS["-created_at"]
    category_cursors: dict[str, list[str]] = {}
    for r in await connection.fetch(
        "SELECT c.slug, p.created_at, p.id FROM products p "
        "JOIN categories c ON c.id = p.category_id WHERE p.is_active "
        "ORDER BY random() LIMIT 2000"
    ):
        category_cursors.setdefault(r["slug"], []).append(
            encode_cursor("products", newest, (_naive(r["created_at"]), r["id"]))
        )
    return Catalog(ids, slugs, cursors, prices, category_cursors)


def _naive(value: datetime) -> datetime:
    return value.replace(tzinfo=None)
