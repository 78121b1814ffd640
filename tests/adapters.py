"""One client per interface (REST v1, REST v2, GraphQL) over the same catalog reads.

Each adapter turns an answer into an interface-neutral outcome, so one set of cases
runs against all three:

- ``("ok", data)`` where lists are ``{"items": [...], "next_cursor": str | None}``;
- ``("not_found",)``, ``("invalid",)``, ``("forbidden",)``, ``("conflict",)``, ...

Normalised objects use REST field names with money as ``{"amount", "currency"}`` and
timestamps as aware ``datetime`` values. v1 minor units are converted here, with
``Decimal``, independently of the code under test.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.conftest import Gateway

Outcome = tuple[Any, ...]

CODES = {
    "NOT_FOUND": "not_found",
    "BAD_USER_INPUT": "invalid",
    "FORBIDDEN": "forbidden",
    "CONFLICT": "conflict",
    "UNAUTHENTICATED": "unauthenticated",
}
STATUSES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
}


def money_of_cents(cents: int, currency: str) -> dict[str, str]:
    return {"amount": f"{Decimal(cents) / 100:.2f}", "currency": currency}


def when(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without a zone: {value}"
    return parsed


PRODUCT_KEYS = ("id", "sku", "name", "description", "in_stock", "category", "is_active")
REVIEW_KEYS = ("id", "product", "author", "author_name", "rating", "title", "body")


class Adapter:
    name = ""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def list_products(
        self,
        *,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Any,
    ) -> Outcome:
        raise NotImplementedError

    async def get_product(self, product_id: int) -> Outcome:
        raise NotImplementedError

    async def list_categories(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        raise NotImplementedError

    async def get_category(self, slug: str) -> Outcome:
        raise NotImplementedError

    async def list_reviews(
        self, product_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        raise NotImplementedError


class RestAdapter(Adapter):
    version = ""

    def _product(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def _get(self, path: str, params: dict[str, Any]) -> Outcome:
        params = {
            k: str(v).lower() if isinstance(v, bool) else v
            for k, v in params.items()
            if v is not None
        }
        response = await self.gateway.client.get(f"/api/{self.version}{path}", params=params)
        if response.status_code == 200:
            return ("ok", response.json())
        assert response.headers["content-type"] == "application/problem+json", response.text
        problem = response.json()
        assert problem["status"] == response.status_code
        outcome = STATUSES.get(response.status_code, f"http_{response.status_code}")
        assert CODES.get(problem["code"]) == outcome, problem
        return (outcome,)

    async def _list(self, path: str, params: dict[str, Any], render: Any) -> Outcome:
        outcome = await self._get(path, params)
        if outcome[0] != "ok":
            return outcome
        body = outcome[1]
        assert set(body) == {"data", "next_cursor"}, body
        return (
            "ok",
            {"items": [render(item) for item in body["data"]], "next_cursor": body["next_cursor"]},
        )

    async def list_products(
        self,
        *,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Any,
    ) -> Outcome:
        params = {"sort": sort, "limit": limit, "cursor": cursor, **filters}
        return await self._list("/products", params, self._product)

    async def get_product(self, product_id: int) -> Outcome:
        outcome = await self._get(f"/products/{product_id}", {})
        return ("ok", self._product(outcome[1])) if outcome[0] == "ok" else outcome

    async def list_categories(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        return await self._list("/categories", {"limit": limit, "cursor": cursor}, _category)

    async def get_category(self, slug: str) -> Outcome:
        outcome = await self._get(f"/categories/{slug}", {})
        return ("ok", _category(outcome[1])) if outcome[0] == "ok" else outcome

    async def list_reviews(
        self, product_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        return await self._list(
            f"/products/{product_id}/reviews", {"limit": limit, "cursor": cursor}, _review
        )


def _category(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"id", "slug", "name", "created_at"}, body
    return {**body, "created_at": when(body["created_at"])}


def _review(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {*REVIEW_KEYS, "created_at"}, body
    return {**body, "created_at": when(body["created_at"])}


def _rest_product(body: dict[str, Any], price: dict[str, str]) -> dict[str, Any]:
    assert "stock" not in body, "anonymous callers must not see stock"
    return {
        **{k: body[k] for k in PRODUCT_KEYS},
        "price": price,
        "created_at": when(body["created_at"]),
        "updated_at": when(body["updated_at"]),
    }


class RestV1(RestAdapter):
    name = version = "v1"

    def _product(self, body: dict[str, Any]) -> dict[str, Any]:
        assert "price" not in body
        assert isinstance(body["price_cents"], int)
        return _rest_product(body, money_of_cents(body["price_cents"], body["currency"]))


class RestV2(RestAdapter):
    name = version = "v2"

    def _product(self, body: dict[str, Any]) -> dict[str, Any]:
        assert "price_cents" not in body
        assert "currency" not in body
        assert set(body["price"]) == {"amount", "currency"}
        return _rest_product(body, body["price"])


PRODUCT_FIELDS = """
    databaseId sku name description price { amount currency } inStock isActive
    createdAt updatedAt category { databaseId }
"""
CATEGORY_FIELDS = "databaseId slug name createdAt"
REVIEW_FIELDS = """
    databaseId rating title body createdAt author { databaseId name } product { databaseId }
"""
PAGE_INFO = "pageInfo { hasNextPage endCursor }"
ORDER_BY = {
    "created_at": ("CREATED_AT", "ASC"),
    "-created_at": ("CREATED_AT", "DESC"),
    "price": ("PRICE", "ASC"),
    "-price": ("PRICE", "DESC"),
    "name": ("NAME", "ASC"),
    "-name": ("NAME", "DESC"),
}
FILTER_NAMES = {
    "category": "category",
    "q": "q",
    "min_price": "minPrice",
    "max_price": "maxPrice",
    "in_stock": "inStock",
}


def graphql_product(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node["databaseId"],
        "sku": node["sku"],
        "name": node["name"],
        "description": node["description"],
        "in_stock": node["inStock"],
        "category": node["category"]["databaseId"],
        "is_active": node["isActive"],
        "price": node["price"],
        "created_at": when(node["createdAt"]),
        "updated_at": when(node["updatedAt"]),
    }


def graphql_category(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node["databaseId"],
        "slug": node["slug"],
        "name": node["name"],
        "created_at": when(node["createdAt"]),
    }


def graphql_review(node: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": node["databaseId"],
        "product": node["product"]["databaseId"],
        "author": node["author"]["databaseId"],
        "author_name": node["author"]["name"],
        "rating": node["rating"],
        "title": node["title"],
        "body": node["body"],
        "created_at": when(node["createdAt"]),
    }


def graphql_outcome(body: dict[str, Any]) -> Outcome | None:
    """The failure outcome of a GraphQL answer, or None when it has no errors."""
    errors = body.get("errors")
    if not errors:
        return None
    codes = {error["extensions"]["code"] for error in errors}
    assert len(codes) == 1, errors
    [code] = codes
    return (CODES.get(code, code.lower()),)


class GraphQLAdapter(Adapter):
    name = "graphql"

    async def _run(self, query: str, variables: dict[str, Any], *path: str) -> Outcome:
        body = await self.gateway.graphql(query, variables)
        failed = graphql_outcome(body)
        if failed is not None:
            return failed
        data = body["data"]
        for key in path:
            data = data[key]
        return ("ok", data)

    @staticmethod
    def _connection(data: dict[str, Any], render: Any) -> dict[str, Any]:
        info = data["pageInfo"]
        return {
            "items": [render(edge["node"]) for edge in data["edges"]],
            "next_cursor": info["endCursor"] if info["hasNextPage"] else None,
        }

    async def list_products(
        self,
        *,
        sort: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        **filters: Any,
    ) -> Outcome:
        order_by = None
        if sort is not None:
            field, direction = ORDER_BY[sort]
            order_by = {"field": field, "direction": direction}
        variables = {
            "first": limit,
            "after": cursor,
            "orderBy": order_by,
            "filter": {FILTER_NAMES[k]: v for k, v in filters.items()} or None,
        }
        query = f"""
            query($first: Int, $after: String, $orderBy: ProductOrder,
                  $filter: ProductFilterInput) {{
              products(first: $first, after: $after, orderBy: $orderBy, filter: $filter) {{
                edges {{ node {{ {PRODUCT_FIELDS} }} }} {PAGE_INFO}
              }}
            }}"""
        outcome = await self._run(query, variables, "products")
        if outcome[0] != "ok":
            return outcome
        return ("ok", self._connection(outcome[1], graphql_product))

    async def _product_by(self, argument: str, value: Any) -> Outcome:
        kind = "ID" if argument == "id" else "String"
        query = f"""query($v: {kind}!) {{ product({argument}: $v) {{ {PRODUCT_FIELDS} }} }}"""
        outcome = await self._run(query, {"v": value}, "product")
        return ("ok", graphql_product(outcome[1])) if outcome[0] == "ok" else outcome

    async def get_product(self, product_id: int | str) -> Outcome:
        return await self._product_by("id", str(product_id))

    async def get_product_by_sku(self, sku: str) -> Outcome:
        return await self._product_by("sku", sku)

    async def list_categories(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        query = f"""query($first: Int, $after: String) {{
            categories(first: $first, after: $after) {{
              edges {{ node {{ {CATEGORY_FIELDS} }} }} {PAGE_INFO} }} }}"""
        outcome = await self._run(query, {"first": limit, "after": cursor}, "categories")
        if outcome[0] != "ok":
            return outcome
        return ("ok", self._connection(outcome[1], graphql_category))

    async def get_category(self, slug: str) -> Outcome:
        query = f"query($slug: String!) {{ category(slug: $slug) {{ {CATEGORY_FIELDS} }} }}"
        outcome = await self._run(query, {"slug": slug}, "category")
        return ("ok", graphql_category(outcome[1])) if outcome[0] == "ok" else outcome

    async def list_reviews(
        self, product_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Outcome:
        query = f"""query($id: ID!, $first: Int, $after: String) {{
            product(id: $id) {{ reviews(first: $first, after: $after) {{
              edges {{ node {{ {REVIEW_FIELDS} }} }} {PAGE_INFO} }} }} }}"""
        variables = {"id": str(product_id), "first": limit, "after": cursor}
        outcome = await self._run(query, variables, "product", "reviews")
        if outcome[0] != "ok":
            return outcome
        return ("ok", self._connection(outcome[1], graphql_review))


ADAPTERS: dict[str, type[Adapter]] = {
    "rest_v1": RestV1,
    "rest_v2": RestV2,
    "graphql": GraphQLAdapter,
}
