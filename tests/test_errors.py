"""Bad input and errors: problem+json in REST, ``extensions.code`` in GraphQL, never 500."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.oracle import load_catalog

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
BIG = 2**40


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert PROBLEM_KEYS <= set(body), body
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["type"].startswith("https://")
    assert body["title"]
    assert body["detail"]
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


def gid(type_name: str, database_id: int) -> str:
    return base64.b64encode(f"{type_name}:{database_id}".encode()).decode()


# -- REST ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v3/products", "/api/v1/nope", "/api/v1/products/1/nope"]
)
async def test_unknown_route_is_a_not_found_problem(gateway: Gateway, path: str) -> None:
    body = problem(await gateway.client.get(path), 404, "NOT_FOUND")
    assert set(body) == PROBLEM_KEYS


async def test_request_id_is_taken_from_the_caller(gateway: Gateway) -> None:
    response = await gateway.client.get("/nope", headers={"X-Request-ID": "trace-123"})
    assert problem(response, 404, "NOT_FOUND")["request_id"] == "trace-123"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-5", "limit"),
        ("min_price=-1", "min_price"),
        ("max_price=abc", "max_price"),
        ("sort=bogus", "sort"),
        ("in_stock=maybe", "in_stock"),
        (f"q={'x' * 201}", "q"),
    ],
)
@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_bad_parameter_types_are_422(
    gateway: Gateway, version: str, query: str, field: str
) -> None:
    body = problem(
        await gateway.client.get(f"/api/{version}/products?{query}"), 422, "BAD_USER_INPUT"
    )
    assert body["errors"], body
    assert all(set(e) == {"loc", "msg"} and e["msg"] for e in body["errors"])
    assert ["query", field] in [e["loc"] for e in body["errors"]]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/products/abc", "/api/v1/products/abc/reviews", "/api/v1/categories?limit=1000"],
)
async def test_bad_path_and_list_parameters_are_422(gateway: Gateway, path: str) -> None:
    problem(await gateway.client.get(path), 422, "BAD_USER_INPUT")


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/products/{BIG}",
        f"/api/v2/products/{BIG}/reviews",
        "/api/v1/products/-1",
        "/api/v1/categories/%00",
        "/api/v2/categories/no-such-thing",
    ],
)
async def test_ids_and_slugs_no_row_can_have_are_404(gateway: Gateway, path: str) -> None:
    problem(await gateway.client.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize("query", [f"min_price={BIG}", f"max_price={BIG}", "q=%00", "category=%00"])
async def test_unstorable_filters_are_bad_user_input(gateway: Gateway, query: str) -> None:
    response = await gateway.client.get(f"/api/v1/products?{query}")
    assert response.status_code in (400, 422), response.text
    problem(response, response.status_code, "BAD_USER_INPUT")


@pytest.mark.parametrize("fields", ["bogus", "id,bogus", "price_cents"])
async def test_unknown_sparse_fields_are_400(gateway: Gateway, fields: str) -> None:
    for path in ("/api/v2/products", "/api/v2/products/1", "/api/v2/categories"):
        body = problem(
            await gateway.client.get(path, params={"fields": fields}), 400, "BAD_USER_INPUT"
        )
        assert body["errors"][0]["loc"] == ["query", "fields"]


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/api/v2/products", "id,name,price"),
        ("/api/v2/products", "sku"),
        ("/api/v2/categories", "slug,name"),
        ("/api/v2/products/{product}/reviews", "id,rating"),
    ],
)
async def test_sparse_fieldsets_return_exactly_those_keys(
    gateway: Gateway, path: str, fields: str
) -> None:
    catalog = await load_catalog(gateway)
    product = max(catalog.active_ids(), key=lambda i: len(catalog.reviews_of(i)))
    response = await gateway.client.get(path.format(product=product), params={"fields": fields})
    assert response.status_code == 200, response.text
    items = response.json()["data"]
    assert items
    # ``id`` always comes along: an object without it could not be told apart.
    assert all(set(item) == {"id", *fields.split(",")} for item in items)
    one = await gateway.client.get(f"/api/v2/products/{product}", params={"fields": "id,price"})
    assert set(one.json()) == {"id", "price"}
    assert set(one.json()["price"]) == {"amount", "currency"}


async def test_v1_has_no_sparse_fieldsets(gateway: Gateway) -> None:
    full = (await gateway.client.get("/api/v1/products?limit=2")).json()
    response = await gateway.client.get("/api/v1/products?limit=2&fields=id")
    assert response.status_code == 200
    assert response.json() == full


async def test_stock_is_absent_for_anonymous_rest_callers(gateway: Gateway) -> None:
    for version in ("v1", "v2"):
        items = (await gateway.client.get(f"/api/{version}/products?limit=50")).json()["data"]
        assert items
        assert all("stock" not in item and "in_stock" in item for item in items)
    sparse = await gateway.client.get("/api/v2/products?limit=3&fields=id,stock")
    assert [set(item) for item in sparse.json()["data"]] == [{"id"}] * 3


async def test_inactive_products_do_not_exist_for_anonymous(gateway: Gateway) -> None:
    catalog = await load_catalog(gateway)
    inactive = [p.id for p in catalog.products.values() if not p.is_active]
    assert inactive
    for version in ("v1", "v2"):
        listed = (await gateway.client.get(f"/api/{version}/products?limit=100")).json()
        assert not {p["id"] for p in listed["data"]} & set(inactive)
        for product_id in inactive:
            for suffix in ("", "/reviews"):
                response = await gateway.client.get(
                    f"/api/{version}/products/{product_id}" + suffix
                )
                problem(response, 404, "NOT_FOUND")
    body = await gateway.graphql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } products(first: 100) { totalCount"
        " edges { node { databaseId } } } }",
        {"ids": [gid("Product", i) for i in inactive]},
    )
    assert body["data"]["nodes"] == [None] * len(inactive)
    listed_ids = {e["node"]["databaseId"] for e in body["data"]["products"]["edges"]}
    assert not listed_ids & set(inactive)
    assert body["data"]["products"]["totalCount"] == len(catalog.active_ids())
    for product_id in inactive:
        node = await gateway.graphql(
            "query($id: ID!) { node(id: $id) { id } }", {"id": gid("Product", product_id)}
        )
        assert (node["data"]["node"], codes(node)) == (None, ["NOT_FOUND"])
        by_id = await gateway.graphql(
            "query($id: ID!) { product(id: $id) { id } }", {"id": str(product_id)}
        )
        assert codes(by_id) == ["NOT_FOUND"]
    hidden_reviews = [r.id for r in catalog.reviews if r.product_id in inactive]
    assert hidden_reviews
    body = await gateway.graphql(
        "query($id: ID!) { node(id: $id) { id } }", {"id": gid("Review", hidden_reviews[0])}
    )
    assert codes(body) == ["NOT_FOUND"]


# -- GraphQL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ products(first: ", {}),
        ("{ products { nope } }", {}),
        ("{ nope }", {}),
        ("query($n: Int) { products(first: $n) { totalCount } }", {"n": "abc"}),
        ("query($n: Int!) { products(first: $n) { totalCount } }", {}),
        (
            "query($f: ProductFilterInput) { products(filter: $f) { totalCount } }",
            {"f": {"minPrice": "cheap"}},
        ),
        (
            "query($f: ProductFilterInput) { products(filter: $f) { totalCount } }",
            {"f": {"nope": 1}},
        ),
        ("{ products(orderBy: {field: COLOR}) { totalCount } }", {}),
        ("{ products(first: 101) { totalCount } }", {}),
        ("{ products(first: -1) { totalCount } }", {}),
        ("{ products(first: 2, last: 2) { totalCount } }", {}),
        ("{ products(filter: {minPrice: -1}) { totalCount } }", {}),
        ('{ products(filter: {q: "a\\u0000"}) { totalCount } }', {}),
        ('{ node(id: "garbage") { id } }', {}),
        ('{ product(id: "UHJvZHVjdA==") { id } }', {}),
        (f'{{ product(id: "{gid("Category", 1)}") {{ id }} }}', {}),
        ("{ product { id } }", {}),
        ("{ nodes(ids: [" + ",".join(['"x"'] * 101) + "]) { id } }", {}),
        ('{ nodes(ids: ["x", "y", "UHJvZHVjdDox"]) { id } }', {}),
    ],
)
async def test_bad_documents_and_arguments_are_bad_user_input(
    gateway: Gateway, query: str, variables: dict[str, Any]
) -> None:
    body = await gateway.graphql(query, variables)
    assert body["errors"], body
    assert set(codes(body)) == {"BAD_USER_INPUT"}, body
    assert all(error["message"] for error in body["errors"])


@pytest.mark.parametrize(
    "query",
    [
        f'{{ node(id: "{gid("Product", 987654)}") {{ id }} }}',
        f'{{ node(id: "{gid("Product", BIG)}") {{ id }} }}',
        f'{{ node(id: "{gid("Order", 1)}") {{ id }} }}',
        f'{{ product(id: "{BIG}") {{ id }} }}',
        '{ product(sku: "a\\u0000") { id } }',
        '{ category(slug: "no-such-slug") { id } }',
        '{ category(slug: "a\\u0000") { id } }',
    ],
)
async def test_unknown_objects_are_not_found(gateway: Gateway, query: str) -> None:
    body = await gateway.graphql(query)
    assert codes(body) == ["NOT_FOUND"], body


async def test_nodes_of_unknown_ids_are_null(gateway: Gateway) -> None:
    catalog = await load_catalog(gateway)
    known = catalog.active_ids()[0]
    body = await gateway.graphql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Product { databaseId } } }",
        {"ids": [gid("Product", known), gid("Product", BIG), gid("Category", 987654)]},
    )
    assert "errors" not in body, body
    assert body["data"]["nodes"] == [{"id": gid("Product", known), "databaseId": known}, None, None]


async def test_anonymous_stock_is_forbidden_and_the_rest_is_kept(gateway: Gateway) -> None:
    body = await gateway.graphql("{ products(first: 3) { edges { node { name stock inStock } } } }")
    nodes = [e["node"] for e in body["data"]["products"]["edges"]]
    assert len(nodes) == 3
    assert all(n["stock"] is None and n["name"] and isinstance(n["inStock"], bool) for n in nodes)
    assert sorted(tuple(e["path"]) for e in body["errors"]) == [
        ("products", "edges", i, "node", "stock") for i in range(3)
    ]
    assert set(codes(body)) == {"FORBIDDEN"}


async def test_review_author_email_is_forbidden_name_visible(gateway: Gateway) -> None:
    body = await gateway.graphql(
        "{ products(first: 10) { edges { node { reviews(first: 1) { edges { node {"
        " author { name email } } } } } } } }"
    )
    authors = [
        r["node"]["author"]
        for p in body["data"]["products"]["edges"]
        for r in p["node"]["reviews"]["edges"]
    ]
    assert authors
    assert all(a["name"] and a["email"] is None for a in authors)
    assert len(body["errors"]) == len(authors)
    assert all(e["path"][-2:] == ["author", "email"] for e in body["errors"])
    assert set(codes(body)) == {"FORBIDDEN"}


async def test_graphql_errors_carry_the_request_id(gateway: Gateway) -> None:
    body = await gateway.graphql("{ nope }", headers={"X-Request-ID": "gql-42"})
    assert body["errors"][0]["extensions"]["request_id"] == "gql-42"


@pytest.mark.parametrize(
    "document",
    [
        "mutation { __typename }",
        "mutation M { __typename }",
        "query Q { __typename } mutation M { __typename }",
    ],
)
async def test_mutations_are_never_run_from_get(gateway: Gateway, document: str) -> None:
    params = {"query": document}
    if "query Q" in document:
        params["operationName"] = "M"
    response = await gateway.client.get("/graphql", params=params)
    assert response.status_code in (400, 405), response.text
    assert "__typename" not in response.text
    read = await gateway.client.get("/graphql", params={"query": "{ __typename }"})
    assert read.json() == {"data": {"__typename": "Query"}}
