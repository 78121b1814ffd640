"""Catalog and review writes through each interface, with answers normalised alike.

Each call returns ``(outcome, data)``: ``"ok"`` with a REST-shaped body (money as
``{"amount", "currency"}``), or an error outcome (``conflict``, ``invalid``, ...) with the
error's field locations.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from resolvers.ids import to_global_id
from tests.principals import World

STATUSES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    422: "invalid",
}
CODES = {
    "BAD_USER_INPUT": "invalid",
    "UNAUTHENTICATED": "unauthenticated",
    "FORBIDDEN": "forbidden",
    "NOT_FOUND": "not_found",
    "CONFLICT": "conflict",
}
INTERFACES = ("rest_v1", "rest_v2", "graphql")
Result = tuple[str, Any]

CATEGORY = "databaseId slug name"
PRODUCT = (
    "databaseId sku name description price { amount currency } inStock isActive "
    "category { databaseId }"
)
REVIEW = "databaseId rating title body product { databaseId } author { databaseId }"


def price_cents(amount: str) -> int:
    return int(Decimal(amount) * 100)


async def rest(
    world: World, version: str, principal: str, method: str, path: str, body: Any = None
) -> Result:
    response = await world.gateway.client.request(
        method, f"/api/{version}{path}", json=body, headers=world.headers[principal]
    )
    if response.status_code == 204:
        return "ok", None
    data = response.json()
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        return STATUSES[response.status_code], [e["loc"] for e in data.get("errors", [])]
    if "price_cents" in data:
        data["price"] = {
            "amount": f"{Decimal(data.pop('price_cents')) / 100:.2f}",
            "currency": data.pop("currency"),
        }
    return "ok", data


async def graphql(
    world: World, principal: str, document: str, variables: dict[str, Any], field: str
) -> Result:
    body = await world.gateway.graphql(document, variables, headers=world.headers[principal])
    if body.get("errors"):
        error = body["errors"][0]
        return (
            CODES[error["extensions"]["code"]],
            [e["loc"] for e in error["extensions"].get("errors", [])],
        )
    node = body["data"][field]
    out = {"id": node["databaseId"]}
    for key, value in node.items():
        if key == "databaseId":
            continue
        if isinstance(value, dict) and "databaseId" in value:
            value = value["databaseId"]
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
        out[snake] = value
    return "ok", out


def _money_body(version: str, cents: int) -> dict[str, Any]:
    if version == "v1":
        return {"price_cents": cents}
    return {"price": {"amount": f"{Decimal(cents) / 100:.2f}", "currency": "USD"}}


async def create_category(
    world: World, interface: str, principal: str, slug: str, name: str
) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($i: CreateCategoryInput!) {{
            createCategory(input: $i) {{ {CATEGORY} }} }}""",
            {"i": {"slug": slug, "name": name}},
            "createCategory",
        )
    return await rest(
        world, interface[5:], principal, "POST", "/categories", {"slug": slug, "name": name}
    )


async def update_category(
    world: World, interface: str, principal: str, current: str, **changes: Any
) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($s: String!,
            $i: UpdateCategoryInput!) {{ updateCategory(slug: $s, input: $i) {{ {CATEGORY} }} }}""",
            {"s": current, "i": changes},
            "updateCategory",
        )
    return await rest(world, interface[5:], principal, "PATCH", f"/categories/{current}", changes)


async def delete_category(world: World, interface: str, principal: str, slug: str) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($s: String!) {{
            deleteCategory(slug: $s) {{ {CATEGORY} }} }}""",
            {"s": slug},
            "deleteCategory",
        )
    return await rest(world, interface[5:], principal, "DELETE", f"/categories/{slug}")


async def create_product(
    world: World,
    interface: str,
    principal: str,
    *,
    sku: str,
    category: int,
    cents: int = 1999,
    **extra: Any,
) -> Result:
    if interface == "graphql":
        values = {
            "sku": sku,
            "name": extra.pop("name", "Widget"),
            "categoryId": to_global_id("Category", category),
            "price": {"amount": f"{Decimal(cents) / 100:.2f}", "currency": "USD"},
            **extra,
        }
        return await graphql(
            world,
            principal,
            f"""mutation($i: CreateProductInput!) {{
            createProduct(input: $i) {{ {PRODUCT} }} }}""",
            {"i": values},
            "createProduct",
        )
    version = interface[5:]
    body = {
        "sku": sku,
        "name": extra.pop("name", "Widget"),
        "category": category,
        **_money_body(version, cents),
        **{_snake(k): v for k, v in extra.items()},
    }
    return await rest(world, version, principal, "POST", "/products", body)


def _snake(key: str) -> str:
    """A GraphQL input name as the REST body's (``categoryId`` is REST's ``category``)."""
    if key == "categoryId":
        return "category"
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


async def update_product(
    world: World,
    interface: str,
    principal: str,
    product_id: int,
    cents: int | None = None,
    **changes: Any,
) -> Result:
    if interface == "graphql":
        values = dict(changes)
        if cents is not None:
            values["price"] = {"amount": f"{Decimal(cents) / 100:.2f}", "currency": "USD"}
        return await graphql(
            world,
            principal,
            f"""mutation($id: ID!, $i: UpdateProductInput!) {{
            updateProduct(id: $id, input: $i) {{ {PRODUCT} }} }}""",
            {"id": to_global_id("Product", product_id), "i": values},
            "updateProduct",
        )
    version = interface[5:]
    body = {_snake(k): v for k, v in changes.items()}
    if cents is not None:
        body.update(_money_body(version, cents))
    return await rest(world, version, principal, "PATCH", f"/products/{product_id}", body)


async def delete_product(world: World, interface: str, principal: str, product_id: int) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($id: ID!) {{
            deleteProduct(id: $id) {{ {PRODUCT} }} }}""",
            {"id": to_global_id("Product", product_id)},
            "deleteProduct",
        )
    return await rest(world, interface[5:], principal, "DELETE", f"/products/{product_id}")


async def create_review(
    world: World,
    interface: str,
    principal: str,
    product_id: int,
    rating: Any = 4,
    title: str = "Nice",
    body: str = "",
) -> Result:
    if interface == "graphql":
        values = {
            "productId": to_global_id("Product", product_id),
            "rating": rating,
            "title": title,
            "body": body,
        }
        return await graphql(
            world,
            principal,
            f"""mutation($i: CreateReviewInput!) {{
            createReview(input: $i) {{ {REVIEW} }} }}""",
            {"i": values},
            "createReview",
        )
    return await rest(
        world,
        interface[5:],
        principal,
        "POST",
        f"/products/{product_id}/reviews",
        {"rating": rating, "title": title, "body": body},
    )


async def update_review(
    world: World, interface: str, principal: str, review_id: int, **changes: Any
) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($id: ID!, $i: UpdateReviewInput!) {{
            updateReview(id: $id, input: $i) {{ {REVIEW} }} }}""",
            {"id": to_global_id("Review", review_id), "i": changes},
            "updateReview",
        )
    return await rest(world, interface[5:], principal, "PATCH", f"/reviews/{review_id}", changes)


async def delete_review(world: World, interface: str, principal: str, review_id: int) -> Result:
    if interface == "graphql":
        return await graphql(
            world,
            principal,
            f"""mutation($id: ID!) {{
            deleteReview(id: $id) {{ {REVIEW} }} }}""",
            {"id": to_global_id("Review", review_id)},
            "deleteReview",
        )
    return await rest(world, interface[5:], principal, "DELETE", f"/reviews/{review_id}")
