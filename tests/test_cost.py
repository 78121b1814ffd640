"""The GraphQL cost estimate: objects a document may return, as the limits count them."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from resolvers.cost import DEFAULT_LIST_SIZE, estimate_cost
from resolvers.schema import schema

CATALOG_PAGE = """{ products(first: 20) { edges { node { name category { name }
  reviews(first: 3) { edges { node { rating author { name } } } } } } } }"""


def cost(
    document: str, variables: dict[str, Any] | None = None, operation: str | None = None
) -> int:
    return estimate_cost(schema._schema, parse(document), variables, operation)


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ('{ category(slug: "books") { name } }', 1),
        ('{ product(id: "1") { name price { amount } } }', 2),
        ("{ products { edges { node { name } } } }", 1 + 20),
        (
            "{ products(first: 5) { totalCount pageInfo { hasNextPage } "
            "edges { cursor node { id } } } }",
            1 + 5 * 1 + 1,
        ),
        ("{ products(last: 7) { edges { node { category { name } } } } }", 1 + 7 * 2),
        # 20 products, each with its category and 3 reviews, each with its author.
        (CATALOG_PAGE, 1 + 20 * (1 + 1 + 1 + 3 * (1 + 1))),
        ('{ nodes(ids: ["a", "b", "c"]) { id } }', 3),
        ("{ __typename }", 0),
    ],
)
def test_cost_counts_objects_and_multiplies_nested_lists(document: str, expected: int) -> None:
    assert cost(document) == expected


def test_variables_fragments_aliases_and_directives_count_where_used() -> None:
    document = """
      query Page($n: Int, $withReviews: Boolean!) {
        a: products(first: $n) { ...Item }
        b: products(first: 2) { edges { node { ... on Product { category { name } } } } }
      }
      fragment Item on ProductConnection {
        edges { node { reviews(first: 4) @include(if: $withReviews) { totalCount } } }
      }"""
    assert cost(document, {"n": 10, "withReviews": True}) == (1 + 10 * (1 + 1 + 4 * 0 + 1)) + (
        1 + 2 * 2
    )
    assert cost(document, {"n": 10, "withReviews": False}) == (1 + 10 * 1) + (1 + 2 * 2)


def test_default_list_size_and_operation_choice() -> None:
    document = """
      query One { orders(first: 2) { edges { node { items { product { name } } } } } }
      query Two { categories { totalCount } }"""
    assert cost(document, operation="One") == 1 + 2 * (1 + DEFAULT_LIST_SIZE * (1 + 1))
    assert cost(document, operation="Two") == 1 + 20 * 0 + 1
    assert cost(document) == 0  # two operations and no name: nothing to run


def test_a_fragment_spread_twice_into_one_selection_counts_once() -> None:
    # As execution collects fields: the second ...F adds nothing, so chains of
    # "...F ...F" cost linear time to estimate, not exponential.
    once = "{ ...F } fragment F on Query { products(first: 2) { edges { node { id } } } }"
    twice = "{ ...F ...F } fragment F on Query { products(first: 2) { edges { node { id } } } }"
    assert cost(twice) == cost(once) == 1 + 2
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    assert (
        cost("{ ...F0 } " + chain + " fragment F60 on Query { categories { totalCount } }") == 1 + 1
    )
