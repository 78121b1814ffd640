"""Parity: the same catalog cases through REST v1, REST v2 and GraphQL.

Each case runs through every adapter and is checked against the database; a second
test runs it through all three at once and asserts the normalised answers are equal.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.adapters import ADAPTERS, Adapter, GraphQLAdapter, Outcome
from tests.conftest import Gateway
from tests.oracle import SORTS, Catalog, load_catalog

UNKNOWN_ID = 987_654


@pytest.fixture(params=list(ADAPTERS))
def adapter(request: pytest.FixtureRequest, gateway: Gateway) -> Adapter:
    return ADAPTERS[request.param](gateway)


@pytest.fixture
async def catalog(gateway: Gateway) -> Catalog:
    return await load_catalog(gateway)


def busiest_product(catalog: Catalog) -> int:
    """An active product with the most reviews (at least three)."""
    active = catalog.active_ids()
    best = max(active, key=lambda i: (len(catalog.reviews_of(i)), -i))
    assert len(catalog.reviews_of(best)) >= 3
    return best


def inactive_product(catalog: Catalog) -> int:
    return next(p.id for p in catalog.products.values() if not p.is_active)


def filters_of(catalog: Catalog) -> dict[str, dict[str, Any]]:
    slug = catalog.categories[1].slug
    return {
        "category": {"category": slug},
        "q": {"q": "lamp"},
        "q_upper_case": {"q": "LAMP"},
        "min_price": {"min_price": 25_000},
        "max_price": {"max_price": 10_000},
        "in_stock": {"in_stock": True},
        "out_of_stock": {"in_stock": False},
        "combined": {"category": slug, "min_price": 1_000, "max_price": 40_000, "in_stock": True},
    }


def listing(items: list[dict[str, Any]], more: bool) -> Outcome:
    return ("ok", {"items": items, "more": more})


def normalised(outcome: Outcome) -> Outcome:
    """Lists compare by items and whether a next cursor exists (cursors are opaque)."""
    if outcome[0] == "ok" and isinstance(outcome[1], dict) and "items" in outcome[1]:
        return listing(outcome[1]["items"], outcome[1]["next_cursor"] is not None)
    return outcome


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Adapter, Catalog], Awaitable[Outcome]]
    expect: Callable[[Catalog], Outcome]


def product_list_case(
    name: str, sort: str | None, limit: int | None, filters: Callable[[Catalog], dict[str, Any]]
) -> Case:
    async def run(a: Adapter, c: Catalog) -> Outcome:
        return await a.list_products(sort=sort, limit=limit, **filters(c))

    def expect(c: Catalog) -> Outcome:
        ids = c.active_ids(sort or "-created_at", **filters(c))
        size = limit or 20
        return listing([c.product_body(i) for i in ids[:size]], len(ids) > size)

    return Case(name, run, expect)


def _no_filters(c: Catalog) -> dict[str, Any]:
    return {}


def _filter(name: str) -> Callable[[Catalog], dict[str, Any]]:
    return lambda c: filters_of(c)[name]


CASES = [
    product_list_case("products_default", None, None, _no_filters),
    *(product_list_case(f"products_sort_{s}", s, 100, _no_filters) for s in SORTS),
    product_list_case("products_sort_price_page", "price", 7, _no_filters),
    *(
        product_list_case(f"products_filter_{f}", "name", 100, _filter(f))
        for f in (
            "category",
            "q",
            "q_upper_case",
            "min_price",
            "max_price",
            "in_stock",
            "out_of_stock",
            "combined",
        )
    ),
    product_list_case("products_q_is_literal", None, None, lambda c: {"q": "%a_"}),
    Case(
        "product_by_id",
        lambda a, c: a.get_product(c.active_ids()[3]),
        lambda c: ("ok", c.product_body(c.active_ids()[3])),
    ),
    Case("product_unknown", lambda a, c: a.get_product(UNKNOWN_ID), lambda c: ("not_found",)),
    Case(
        "product_inactive",
        lambda a, c: a.get_product(inactive_product(c)),
        lambda c: ("not_found",),
    ),
    Case(
        "categories",
        lambda a, c: a.list_categories(limit=100),
        lambda c: listing([c.category_body(x) for x in c.categories], False),
    ),
    Case(
        "categories_page",
        lambda a, c: a.list_categories(limit=2),
        lambda c: listing([c.category_body(x) for x in c.categories[:2]], True),
    ),
    Case(
        "category_by_slug",
        lambda a, c: a.get_category(c.categories[2].slug),
        lambda c: ("ok", c.category_body(c.categories[2])),
    ),
    Case(
        "category_unknown",
        lambda a, c: a.get_category("no-such-category"),
        lambda c: ("not_found",),
    ),
    Case(
        "reviews",
        lambda a, c: a.list_reviews(busiest_product(c), limit=2),
        lambda c: listing([c.review_body(r) for r in c.reviews_of(busiest_product(c))[:2]], True),
    ),
    Case(
        "reviews_all",
        lambda a, c: a.list_reviews(busiest_product(c)),
        lambda c: listing([c.review_body(r) for r in c.reviews_of(busiest_product(c))], False),
    ),
    Case(
        "reviews_unknown_product", lambda a, c: a.list_reviews(UNKNOWN_ID), lambda c: ("not_found",)
    ),
    Case(
        "reviews_inactive_product",
        lambda a, c: a.list_reviews(inactive_product(c)),
        lambda c: ("not_found",),
    ),
    Case(
        "tampered_cursor",
        lambda a, c: a.list_products(cursor="bm90LWEtY3Vyc29y"),
        lambda c: ("invalid",),
    ),
    Case(
        "tampered_review_cursor",
        lambda a, c: a.list_reviews(busiest_product(c), cursor="garbage!"),
        lambda c: ("invalid",),
    ),
    Case("limit_over_100", lambda a, c: a.list_products(limit=101), lambda c: ("invalid",)),
    Case("limit_negative", lambda a, c: a.list_products(limit=-1), lambda c: ("invalid",)),
    Case(
        "categories_tampered_cursor",
        lambda a, c: a.list_categories(cursor="e30"),
        lambda c: ("invalid",),
    ),
    Case(
        "categories_limit_over_100",
        lambda a, c: a.list_categories(limit=101),
        lambda c: ("invalid",),
    ),
    Case(
        "reviews_limit_over_100",
        lambda a, c: a.list_reviews(busiest_product(c), limit=101),
        lambda c: ("invalid",),
    ),
]
CASE_IDS = [case.name for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_case_matches_the_database(adapter: Adapter, catalog: Catalog, case: Case) -> None:
    assert normalised(await case.run(adapter, catalog)) == case.expect(catalog)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_interfaces_agree(gateway: Gateway, catalog: Catalog, case: Case) -> None:
    outcomes = {name: await case.run(cls(gateway), catalog) for name, cls in ADAPTERS.items()}
    first = normalised(outcomes["rest_v1"])
    assert {name: normalised(o) for name, o in outcomes.items()} == dict.fromkeys(outcomes, first)


async def test_filter_cases_select_a_proper_subset(catalog: Catalog) -> None:
    """Each filter case selects some products, but not all (else it proves little)."""
    everything = catalog.active_ids("name")
    for name, filters in filters_of(catalog).items():
        chosen = catalog.active_ids("name", **filters)
        assert 0 < len(chosen) < len(everything), name


async def test_next_page_agrees(adapter: Adapter, catalog: Catalog) -> None:
    """The second page, reached with each interface's own cursor."""
    first = await adapter.list_products(sort="-price", limit=5)
    assert first[0] == "ok"
    second = await adapter.list_products(sort="-price", limit=5, cursor=first[1]["next_cursor"])
    assert [p["id"] for p in second[1]["items"]] == catalog.active_ids("-price")[5:10]
    reviews = await adapter.list_reviews(busiest_product(catalog), limit=2)
    rest = await adapter.list_reviews(
        busiest_product(catalog), limit=2, cursor=reviews[1]["next_cursor"]
    )
    expected = catalog.reviews_of(busiest_product(catalog))[2:4]
    assert [r["id"] for r in rest[1]["items"]] == [r.id for r in expected]


async def test_graphql_product_by_sku(gateway: Gateway, catalog: Catalog) -> None:
    graphql = GraphQLAdapter(gateway)
    product_id = catalog.active_ids()[5]
    sku = catalog.products[product_id].sku
    assert await graphql.get_product_by_sku(sku) == ("ok", catalog.product_body(product_id))
    assert await graphql.get_product_by_sku("SKU-NOPE") == ("not_found",)
    global_id = base64.b64encode(f"Product:{product_id}".encode()).decode()
    assert await graphql.get_product(global_id) == ("ok", catalog.product_body(product_id))
    inactive = catalog.products[inactive_product(catalog)].sku
    assert await graphql.get_product_by_sku(inactive) == ("not_found",)


async def test_price_is_the_same_money_everywhere(gateway: Gateway, catalog: Catalog) -> None:
    product_id = catalog.active_ids()[0]
    cents = catalog.products[product_id].price_cents
    v1 = (await gateway.client.get(f"/api/v1/products/{product_id}")).json()
    v2 = (await gateway.client.get(f"/api/v2/products/{product_id}")).json()
    body = await gateway.graphql(
        "query($id: ID!) { product(id: $id) { price { amount currency } } }",
        {"id": str(product_id)},
    )
    assert (v1["price_cents"], v1["currency"]) == (cents, "USD")
    amount = f"{cents // 100}.{cents % 100:02d}"
    assert v2["price"] == {"amount": amount, "currency": "USD"}
    assert body["data"]["product"]["price"] == {"amount": amount, "currency": "USD"}
