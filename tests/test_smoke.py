from tests.conftest import Gateway


async def test_rest_and_graphql_answer(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1/products?limit=3")
    assert response.status_code == 200
    assert len(response.json()["data"]) == 3
    body = await gateway.graphql("{ products(first: 3) { edges { node { name } } } }")
    assert len(body["data"]["products"]["edges"]) == 3
