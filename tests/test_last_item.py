"""Thirty concurrent orders for the last item, through two live instances on PostgreSQL and
both interfaces: exactly one is placed, every other is a CONFLICT that does not tell a
customer how many are left, and the stock ends at zero."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from data.seed import DEMO_PASSWORD
from tests.conftest import PostgresDatabases
from tests.stock_world import live_gateway, seeded_postgres

PLACE = """mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { databaseId status } }"""


async def token(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_thirty_concurrent_orders_for_the_last_item(
    pg_databases: PostgresDatabases, tmp_path: Path
) -> None:
    url = await seeded_postgres(pg_databases)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with live_gateway(url, tmp_path / "a") as a, live_gateway(url, tmp_path / "b") as b:
        async with (
            httpx.AsyncClient(base_url=a.url, timeout=60) as on_a,
            httpx.AsyncClient(base_url=b.url, timeout=60) as on_b,
        ):
            staff = await token(on_a, "staff@example.com")
            customer = await token(on_a, "customer@example.com")
            listed = await on_a.get("/api/v1/products?limit=1", headers=staff)
            product = listed.json()["data"][0]["id"]
            response = await on_a.patch(
                f"/api/v1/products/{product}", json={"stock": 1}, headers=staff
            )
            assert response.status_code == 200, response.text

            async def order(i: int) -> tuple[str, str]:
                """(outcome, detail): "placed", "conflict" or anything else."""
                client = on_a if i % 2 else on_b
                items = [{"product_id": product, "quantity": 1}]
                if i % 3 == 2:
                    response = await client.post(
                        "/graphql",
                        headers=customer,
                        json={
                            "query": PLACE,
                            "variables": {
                                "input": {"items": [{"productId": product, "quantity": 1}]}
                            },
                        },
                    )
                    body = response.json()
                    if body.get("data") and body["data"].get("placeOrder"):
                        return "placed", ""
                    error = body["errors"][0]
                    return error["extensions"]["code"].lower(), error["message"]
                version = "v1" if i % 3 else "v2"
                response = await client.post(
                    f"/api/{version}/orders", headers=customer, json={"items": items}
                )
                if response.status_code == 201:
                    return "placed", ""
                problem = response.json()
                return problem["code"].lower(), problem["detail"]

            outcomes = await asyncio.gather(*(order(i) for i in range(30)))
            kinds = sorted(kind for kind, _ in outcomes)
            assert kinds == ["conflict"] * 29 + ["placed"], outcomes
            # A customer may not read stock, so no refusal says how many are left.
            assert not any("left" in detail for _, detail in outcomes), outcomes
            detail = await on_b.get(f"/api/v1/products/{product}", headers=staff)
            assert detail.json()["stock"] == 0
            assert detail.json()["in_stock"] is False
