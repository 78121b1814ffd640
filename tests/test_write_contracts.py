"""The write routes in OpenAPI, and write answers that match their documented models."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel

from rest.schemas import CategoryOut, OrderV1, OrderV2, ProductV1, ProductV2, ReviewOut
from tests.orderkit import new_product
from tests.principals import World
from tests.test_contracts import validate

WRITES = {
    ("post", "/categories"): "CategoryIn",
    ("patch", "/categories/{slug}"): "CategoryPatch",
    ("delete", "/categories/{slug}"): None,
    ("post", "/products"): "ProductIn",
    ("patch", "/products/{product_id}"): "ProductPatch",
    ("delete", "/products/{product_id}"): None,
    ("post", "/products/{product_id}/reviews"): "ReviewIn",
    ("patch", "/reviews/{review_id}"): "ReviewPatch",
    ("delete", "/reviews/{review_id}"): None,
    ("post", "/orders"): "PlaceOrderIn",
    ("post", "/orders/{order_id}/cancel"): None,
    ("patch", "/orders/{order_id}"): "OrderStatusIn",
}


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_openapi_lists_every_write(world: World, version: str) -> None:
    openapi = (await world.gateway.client.get("/openapi.json")).json()
    for (method, route), body in WRITES.items():
        operation = openapi["paths"][f"/api/{version}{route}"][method]
        assert operation.get("description") or operation.get("summary"), route
        for status in ("401", "403", "404", "409", "422"):
            assert status in operation["responses"], (route, status)
        schema = str(operation.get("requestBody", {}).get("content", {}))
        if body is None:
            assert "requestBody" not in operation, route
        else:
            expected = body + version.upper() if body.startswith("Product") else body
            assert expected in schema, (route, schema)
    place = openapi["paths"][f"/api/{version}/orders"]["post"]
    headers = {p["name"] for p in place["parameters"] if p["in"] == "header"}
    assert "Idempotency-Key" in headers
    schemas = openapi["components"]["schemas"]
    if version == "v1":
        assert "price_cents" in schemas["ProductInV1"]["properties"]
    else:
        assert "price" in schemas["ProductInV2"]["properties"]
    for forbidden in ("unit_price_cents", "total_cents", "status", "customer_id"):
        assert forbidden not in schemas["PlaceOrderIn"]["properties"]
        assert forbidden not in schemas["OrderLineIn"]["properties"]


@pytest.mark.parametrize(
    ("version", "product_model", "order_model"),
    [("v1", ProductV1, OrderV1), ("v2", ProductV2, OrderV2)],
)
async def test_write_answers_match_the_documented_models(
    world: World, version: str, product_model: type[BaseModel], order_model: type[BaseModel]
) -> None:
    client, staff = world.gateway.client, world.headers["staff"]
    base = f"/api/{version}"
    tag = uuid.uuid4().hex[:8]
    price: dict[str, Any] = (
        {"price_cents": 500}
        if version == "v1"
        else {"price": {"amount": "5.00", "currency": "USD"}}
    )
    answers: list[tuple[type[BaseModel], Any]] = [
        (
            CategoryOut,
            await client.post(
                f"{base}/categories", headers=staff, json={"slug": f"c-{tag}", "name": "C"}
            ),
        ),
        (
            product_model,
            await client.post(
                f"{base}/products",
                headers=staff,
                json={"sku": f"S-{tag}", "name": "P", "category": 1, "stock": 4, **price},
            ),
        ),
    ]
    product = await new_product(world)
    answers.append(
        (
            ReviewOut,
            await client.post(
                f"{base}/products/{product}/reviews",
                headers=world.headers["customer"],
                json={"rating": 5, "title": "Great"},
            ),
        )
    )
    placed = await client.post(
        f"{base}/orders",
        headers=world.headers["customer"],
        json={"items": [{"product_id": product, "quantity": 2}]},
    )
    answers.append((order_model, placed))
    answers.append(
        (
            order_model,
            await client.patch(
                f"{base}/orders/{placed.json()['id']}", headers=staff, json={"status": "paid"}
            ),
        )
    )
    answers.append(
        (
            order_model,
            await client.post(
                f"{base}/orders/{placed.json()['id']}/cancel", headers=world.headers["customer"]
            ),
        )
    )
    for model, response in answers:
        assert response.status_code in (200, 201), response.text
        validate(model, response.json())
        for item in response.json().get("items", []):
            validate(model.model_fields["items"].annotation.__args__[0], item)  # type: ignore
