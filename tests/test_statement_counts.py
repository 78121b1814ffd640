"""No N+1: the SQL a request runs depends on its shape, never on how many rows it returns."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.oracle import load_catalog

NESTED_PRODUCTS = """query($n: Int!) {
  products(first: $n) {
    totalCount
    edges { node {
      name
      category { name }
      reviews(first: 3) { totalCount edges { node { rating author { name } } } }
      averageRating
    } }
  }
}"""

CATEGORIES_PRODUCTS_REVIEWS = """query($n: Int!) {
  categories(first: $n) { edges { node {
    name
    products(first: 5) { totalCount edges { node {
      name
      category { slug }
      reviews(first: 2) { totalCount edges { node { title author { name } } } }
    } } }
  } } }
}"""


async def statements_for(gateway: Gateway, query: str, n: int) -> tuple[int, dict[str, Any]]:
    with gateway.count_statements() as counter:
        body = await gateway.graphql(query, {"n": n})
    assert "errors" not in body, body
    return counter.count, body["data"]


def reviews_seen(products: list[dict[str, Any]]) -> int:
    return sum(len(p["node"]["reviews"]["edges"]) for p in products)


async def test_nested_products_run_a_constant_number_of_statements(gateway: Gateway) -> None:
    few, small = await statements_for(gateway, NESTED_PRODUCTS, 5)
    many, large = await statements_for(gateway, NESTED_PRODUCTS, 50)
    # The larger answer really is larger at every level, so a constant count means batching.
    assert len(large["products"]["edges"]) == 50
    assert reviews_seen(large["products"]["edges"]) > 3 * reviews_seen(small["products"]["edges"])
    assert few == many
    # products, count, categories, review pages, review stats, authors.
    assert many <= 6


async def test_nested_connections_are_batched_across_parents(gateway: Gateway) -> None:
    few, small = await statements_for(gateway, CATEGORIES_PRODUCTS_REVIEWS, 1)
    many, large = await statements_for(gateway, CATEGORIES_PRODUCTS_REVIEWS, 3)
    edges = large["categories"]["edges"]
    assert len(edges) == 3
    assert all(len(c["node"]["products"]["edges"]) == 5 for c in edges)
    assert few == many
    # categories, product pages, product counts, categories of products, review pages,
    # review stats, authors.
    assert many <= 7


async def test_nested_answers_match_the_database(gateway: Gateway) -> None:
    """Batching must not mix parents up: each nested page belongs to its own parent."""
    catalog = await load_catalog(gateway)
    _, data = await statements_for(gateway, CATEGORIES_PRODUCTS_REVIEWS, 3)
    for category_edge, category in zip(
        data["categories"]["edges"], catalog.categories, strict=False
    ):
        node = category_edge["node"]
        assert node["name"] == category.name
        expected = catalog.active_ids("-created_at", category=category.slug)
        assert node["products"]["totalCount"] == len(expected)
        for product_edge, product_id in zip(node["products"]["edges"], expected, strict=False):
            product = product_edge["node"]
            assert product["name"] == catalog.products[product_id].name
            assert product["category"]["slug"] == category.slug
            reviews = catalog.reviews_of(product_id)
            assert product["reviews"]["totalCount"] == len(reviews)
            assert [e["node"]["author"]["name"] for e in product["reviews"]["edges"]] == [
                catalog.users[r.author_id].name for r in reviews[:2]
            ]


async def test_average_rating_matches_the_database(gateway: Gateway) -> None:
    catalog = await load_catalog(gateway)
    _, data = await statements_for(gateway, NESTED_PRODUCTS, 50)
    ids = catalog.active_ids()[:50]
    for edge, product_id in zip(data["products"]["edges"], ids, strict=True):
        ratings = [r.rating for r in catalog.reviews_of(product_id)]
        average = edge["node"]["averageRating"]
        if ratings:
            assert average == pytest.approx(sum(ratings) / len(ratings))
        else:
            assert average is None


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_rest_product_list_is_constant_in_page_size(gateway: Gateway, version: str) -> None:
    counts = []
    for limit in (5, 50):
        with gateway.count_statements() as counter:
            response = await gateway.client.get(f"/api/{version}/products?limit={limit}")
        assert response.status_code == 200
        assert len(response.json()["data"]) == limit
        counts.append(counter.count)
    assert counts[0] == counts[1] <= 1


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_rest_reviews_are_constant_in_page_size(gateway: Gateway, version: str) -> None:
    catalog = await load_catalog(gateway)
    product_id = max(catalog.active_ids(), key=lambda i: len(catalog.reviews_of(i)))
    total = len(catalog.reviews_of(product_id))
    assert total >= 4
    counts = []
    for limit in (1, total):
        with gateway.count_statements() as counter:
            response = await gateway.client.get(
                f"/api/{version}/products/{product_id}/reviews?limit={limit}"
            )
        assert response.status_code == 200
        body = response.json()["data"]
        assert len(body) == limit
        assert all(r["author_name"] for r in body)
        counts.append(counter.count)
    # the product's visibility, the page, the authors
    assert counts[0] == counts[1] <= 3


async def test_nodes_are_loaded_in_one_batch(gateway: Gateway) -> None:
    catalog = await load_catalog(gateway)
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Product { name
                 category { name } } ... on Category { slug } } }"""
    counts = []
    for n in (2, 20):
        ids = [base64.b64encode(f"Product:{i}".encode()).decode() for i in catalog.active_ids()[:n]]
        ids.append(base64.b64encode(f"Category:{catalog.categories[0].id}".encode()).decode())
        with gateway.count_statements() as counter:
            body = await gateway.graphql(query, {"ids": ids})
        assert "errors" not in body, body
        assert [node["id"] for node in body["data"]["nodes"]] == ids
        counts.append(counter.count)
    # products, then categories (Category nodes and Product.category)
    assert counts[0] == counts[1] <= 3
