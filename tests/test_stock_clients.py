"""The clients people already use, unchanged, against a live gateway on PostgreSQL and Redis.

``gql`` (HTTP and graphql-transport-ws) loads the schema with its own introspection query
and validates every document against it before sending; a client generated from the
gateway's ``/openapi.json`` by ``openapi-python-client`` parses every answer with the
models the document describes, and refuses a status the document does not list.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, get_type_hints

import httpx
import orjson
import pytest
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from graphql import GraphQLError, print_ast

from data.seed import DEMO_PASSWORD
from resolvers.ids import to_global_id
from tests.conftest import PostgresDatabases
from tests.serving import Served
from tests.stock_world import PACKAGE, Generated, generated_client, live_gateway, seeded_postgres

TIMEOUT = 30.0
CUSTOMER, STAFF = "customer@example.com", "staff@example.com"
IN_STOCK = """query InStock($first: Int!) {
  products(first: $first, filter: {inStock: true}, orderBy: {field: PRICE}) {
    totalCount
    edges { node { id databaseId name inStock price { amount currency } } }
  }
}"""
LOGIN = """mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { accessToken tokenType expiresIn }
}"""
PLACE = """mutation Place($input: PlaceOrderInput!) {
  placeOrder(input: $input) { id databaseId status total { amount currency } }
}"""
VIEWER = "query Me { viewer { email orders(first: 50) { edges { node { databaseId } } } } }"
FOLLOW = "subscription Follow($id: ID!) { orderUpdated(id: $id) { databaseId status } }"


@pytest.fixture(scope="module")
async def live(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[Served]:
    url = await seeded_postgres(pg_databases)
    with live_gateway(url, tmp_path_factory.mktemp("stock-clients")) as served:
        yield served


@pytest.fixture(scope="module")
def generated(live: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    with generated_client(live.url, tmp_path_factory.mktemp("generated")) as client:
        yield client


def gql_client(live: Served) -> Client:
    """gql over HTTP, loading the schema from the gateway as its users do."""
    return Client(
        transport=HTTPXAsyncTransport(url=live.url + "/graphql", timeout=TIMEOUT),
        fetch_schema_from_transport=True,
    )


def bearer(token: str) -> dict[str, Any]:
    """gql's per-request httpx arguments carrying a bearer token."""
    return {"headers": {"Authorization": f"Bearer {token}"}}


def code_of(error: TransportQueryError) -> str:
    assert error.errors, error
    return str(error.errors[0]["extensions"]["code"])


# gql.


async def test_gql_loads_the_schema_then_queries_and_mutates(live: Served) -> None:
    client = gql_client(live)
    async with client as session:
        # Its introspection query (12 levels deep) passed the gateway's limits.
        assert client.schema is not None
        assert client.schema.subscription_type is not None
        assert "orderUpdated" in client.schema.subscription_type.fields
        # Documents are validated against that schema before anything is sent.
        with pytest.raises(GraphQLError, match="Cannot query field 'nope' on type 'Product'"):
            await session.execute(gql("{ products { edges { node { nope } } } }"))

        listing = await session.execute(GraphQLRequest(IN_STOCK, variable_values={"first": 3}))
        nodes = [edge["node"] for edge in listing["products"]["edges"]]
        assert len(nodes) == 3
        assert listing["products"]["totalCount"] >= 3
        assert all(node["inStock"] and node["price"]["currency"] == "USD" for node in nodes)

        # gql's batching: one POST of a JSON array, answered in order.
        batch = await session.execute_batch(
            [
                GraphQLRequest(IN_STOCK, variable_values={"first": 1}),
                GraphQLRequest(
                    "query($id: ID!) { product(id: $id) { name } }",
                    variable_values={"id": nodes[1]["id"]},
                ),
            ]
        )
        assert batch[0]["products"]["edges"][0]["node"] == nodes[0]
        assert batch[1] == {"product": {"name": nodes[1]["name"]}}

        tokens = (
            await session.execute(
                GraphQLRequest(
                    LOGIN, variable_values={"email": CUSTOMER, "password": DEMO_PASSWORD}
                )
            )
        )["login"]
        assert tokens["tokenType"] == "bearer"
        assert tokens["expiresIn"] > 0
        place = GraphQLRequest(
            PLACE,
            variable_values={
                "input": {
                    "items": [{"productId": nodes[0]["id"], "quantity": 1}],
                    "idempotencyKey": f"gql-{uuid.uuid4()}",
                }
            },
        )
        with pytest.raises(TransportQueryError) as anonymous:
            await session.execute(place)
        assert code_of(anonymous.value) == "UNAUTHENTICATED"

        placed = await session.execute(place, extra_args=bearer(tokens["accessToken"]))
        order = placed["placeOrder"]
        assert order["status"] == "pending"
        assert order["total"] == nodes[0]["price"]
        # The same key and items again: the same order, not a second one.
        replayed = await session.execute(place, extra_args=bearer(tokens["accessToken"]))
        assert replayed == placed

        viewer = (await session.execute(gql(VIEWER), extra_args=bearer(tokens["accessToken"])))[
            "viewer"
        ]
        assert viewer["email"] == CUSTOMER
        mine = [edge["node"]["databaseId"] for edge in viewer["orders"]["edges"]]
        assert mine.count(order["databaseId"]) == 1


async def test_gql_sends_an_automatic_persisted_query(live: Served) -> None:
    """Apollo's protocol through gql's public means: the request's ``extensions``, and the
    transport's ``extra_args`` for the body that carries the hash alone."""
    query = (
        "query Cheapest($first: Int!) { products(first: $first, orderBy: {field: PRICE}) "
        "{ edges { node { databaseId name price { amount } } } } }"
    )
    request = GraphQLRequest(query, variable_values={"first": 2})
    # The hash of the text gql sends, which is its own printing of the document.
    digest = hashlib.sha256(print_ast(request.document).encode()).hexdigest()
    extension = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
    hash_alone = {"json": {"variables": {"first": 2}, "extensions": extension}}
    async with gql_client(live) as session:
        with pytest.raises(TransportQueryError) as unknown:
            await session.execute(request, extra_args=hash_alone)
        assert code_of(unknown.value) == "PERSISTED_QUERY_NOT_FOUND"

        registered = await session.execute(GraphQLRequest(request, extensions=extension))
        assert len(registered["products"]["edges"]) == 2

        assert await session.execute(request, extra_args=hash_alone) == registered
        other = {"json": {"variables": {"first": 1}, "extensions": extension}}
        assert (await session.execute(request, extra_args=other))["products"][
            "edges"
        ] == registered["products"]["edges"][:1]


async def test_gql_follows_an_order_over_graphql_transport_ws(live: Served) -> None:
    async with gql_client(live) as session:
        product = (await session.execute(GraphQLRequest(IN_STOCK, variable_values={"first": 1})))[
            "products"
        ]["edges"][0]["node"]
        token = (
            await session.execute(
                GraphQLRequest(
                    LOGIN, variable_values={"email": CUSTOMER, "password": DEMO_PASSWORD}
                )
            )
        )["login"]["accessToken"]
        order = (
            await session.execute(
                GraphQLRequest(
                    PLACE,
                    variable_values={
                        "input": {"items": [{"productId": product["id"], "quantity": 1}]}
                    },
                ),
                extra_args=bearer(token),
            )
        )["placeOrder"]

    transport = WebsocketsTransport(
        url=live.url.replace("http", "ws", 1) + "/graphql",
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    # The schema comes over the socket too: introspection as a graphql-transport-ws operation.
    ws_client = Client(transport=transport, fetch_schema_from_transport=True)
    async with ws_client as ws, httpx.AsyncClient(base_url=live.url, timeout=TIMEOUT) as rest:
        assert transport.subprotocol == "graphql-transport-ws"
        assert ws_client.schema is not None
        updates = ws.subscribe(GraphQLRequest(FOLLOW, variable_values={"id": order["id"]}))
        first = asyncio.create_task(anext(updates))
        try:
            # gql lists a subscription in ``transport.listeners`` once it has sent it; a
            # probe for an order that does not exist, sent after it, is answered after it:
            # by then the server holds the first on the event bus.
            while not transport.listeners and not first.done():
                await asyncio.sleep(0.01)
            probe = ws.subscribe(
                GraphQLRequest(FOLLOW, variable_values={"id": to_global_id("Order", 2**31 - 1)})
            )
            with pytest.raises(TransportQueryError) as missing:
                await asyncio.wait_for(anext(probe), TIMEOUT)
            assert code_of(missing.value) == "NOT_FOUND"

            staff = await rest.post(
                "/api/v1/auth/token", data={"username": STAFF, "password": DEMO_PASSWORD}
            )
            assert staff.status_code == 200, staff.text
            paid = await rest.patch(
                f"/api/v1/orders/{order['databaseId']}",
                json={"status": "paid"},
                headers={"Authorization": f"Bearer {staff.json()['access_token']}"},
            )
            assert paid.status_code == 200, paid.text

            heard = await asyncio.wait_for(first, TIMEOUT)
            assert heard == {"orderUpdated": {"databaseId": order["databaseId"], "status": "paid"}}
        finally:
            first.cancel()
            await updates.aclose()


# A client generated by openapi-python-client.


def test_the_generator_reports_no_warnings(generated: Generated) -> None:
    lines = [line.strip() for line in generated.output.splitlines() if line.strip()]
    assert lines == [f"Generating {Path(generated.package.__file__).parent}"], generated.output


async def test_generated_client_pages_products_and_reads_one(
    live: Served, generated: Generated
) -> None:
    listing = generated.endpoint("get", "/api/v1/products")
    detail = generated.endpoint("get", "/api/v1/products/{product_id}")
    detail_v2 = generated.endpoint("get", "/api/v2/products/{product_id}")
    async with generated.client(live.url) as client:
        seen: list[int] = []
        pages, cursor = 0, None
        while True:
            page = await listing.asyncio_detailed(
                client=client, limit=25, **({"cursor": cursor} if cursor else {})
            )
            assert page.status_code == 200
            pages += 1
            seen += [product.id for product in page.parsed.data]
            cursor = page.parsed.next_cursor
            if cursor is None:
                break
            assert page.headers["link"].endswith('rel="next"')
        assert pages >= 2
        assert len(seen) == len(set(seen))  # no repeats
        whole = await listing.asyncio_detailed(client=client, limit=100)
        assert whole.parsed.next_cursor is None
        assert seen == [product.id for product in whole.parsed.data]  # and none skipped

        product = page.parsed.data[0]
        one = await detail.asyncio_detailed(product.id, client=client)
        assert one.status_code == 200
        assert (one.parsed.id, one.parsed.name, one.parsed.price_cents) == (
            product.id,
            product.name,
            product.price_cents,
        )
        assert "stock" not in one.parsed.to_dict()  # hidden from anonymous callers: absent
        # Every field the server sent is one the document describes.
        assert one.parsed.additional_properties == {}
        assert page.parsed.additional_properties == {}
        two = await detail_v2.asyncio_detailed(product.id, client=client)
        assert two.status_code == 200
        assert two.parsed.price.currency == one.parsed.currency
        assert round(float(two.parsed.price.amount) * 100) == one.parsed.price_cents


async def test_generated_client_logs_in_and_places_an_order_once(
    live: Served, generated: Generated
) -> None:
    token = generated.endpoint("post", "/api/v1/auth/token")
    listing = generated.endpoint("get", "/api/v1/products")
    place = generated.endpoint("post", "/api/v1/orders")
    read = generated.endpoint("get", "/api/v1/orders/{order_id}")
    form = get_type_hints(token.asyncio_detailed)["body"]
    order_in = get_type_hints(place.asyncio_detailed)["body"]
    async with generated.client(live.url) as client:
        login = await token.asyncio_detailed(
            client=client, body=form.from_dict({"username": CUSTOMER, "password": DEMO_PASSWORD})
        )
        assert login.status_code == 200
        assert login.parsed.token_type == "bearer"
        assert login.parsed.additional_properties == {}
        stocked = (
            await listing.asyncio_detailed(client=client, in_stock=True, limit=2)
        ).parsed.data
    async with generated.client(live.url, login.parsed.access_token) as customer:
        key = f"openapi-{uuid.uuid4()}"
        body = order_in.from_dict({"items": [{"product_id": stocked[0].id, "quantity": 1}]})
        first = await place.asyncio_detailed(client=customer, body=body, idempotency_key=key)
        assert first.status_code == 201, first.content
        retried = await place.asyncio_detailed(client=customer, body=body, idempotency_key=key)
        assert retried.status_code == 201
        assert retried.parsed.to_dict() == first.parsed.to_dict()
        assert first.parsed.status == "pending"
        assert first.parsed.additional_properties == {}
        assert first.parsed.items[0].additional_properties == {}
        assert [item.product for item in first.parsed.items] == [stocked[0].id]

        other = order_in.from_dict({"items": [{"product_id": stocked[1].id, "quantity": 1}]})
        conflict = await place.asyncio_detailed(client=customer, body=other, idempotency_key=key)
        assert conflict.status_code == 409
        assert conflict.parsed.code == "CONFLICT"

        again = await read.asyncio_detailed(first.parsed.id, client=customer)
        assert again.status_code == 200
        assert again.parsed.to_dict() == first.parsed.to_dict()


async def test_generated_client_parses_a_problem(live: Served, generated: Generated) -> None:
    detail = generated.endpoint("get", "/api/v1/products/{product_id}")
    async with generated.client(live.url) as client:
        missing = await detail.asyncio_detailed(2**31 - 1, client=client)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    problem = missing.parsed
    assert type(problem).__module__.startswith(f"{PACKAGE}.models.")  # a typed model
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    assert problem.request_id == missing.headers["x-request-id"]
    # The typed model holds exactly the body the server sent: every field is documented.
    assert problem.to_dict() == orjson.loads(missing.content)
    assert problem.additional_properties == {}


# Answers a client meets beyond the happy path, each one the document must list.


async def test_generated_client_meets_a_401_for_a_bad_token_on_a_public_route(
    live: Served, generated: Generated
) -> None:
    """A credential that fails is refused on every route, also on those anonymous may read."""
    listing = generated.endpoint("get", "/api/v1/products")
    async with generated.client(live.url, token="not-a-token") as client:
        refused = await listing.asyncio_detailed(client=client, limit=1)
    assert refused.status_code == 401
    assert refused.parsed.code == "UNAUTHENTICATED"


async def test_generated_client_meets_a_304_for_its_etag(
    live: Served, generated: Generated
) -> None:
    listing = generated.endpoint("get", "/api/v1/products")
    detail = generated.endpoint("get", "/api/v1/products/{product_id}")
    async with generated.client(live.url) as client:
        product_id = (await listing.asyncio_detailed(client=client, limit=1)).parsed.data[0].id
        first = await detail.asyncio_detailed(product_id, client=client)
        assert first.status_code == 200
        etag = first.headers["etag"]
        async with client.with_headers({"If-None-Match": etag}) as conditional:
            unchanged = await detail.asyncio_detailed(product_id, client=conditional)
    assert unchanged.status_code == 304
    assert unchanged.parsed is None


async def test_generated_client_reads_a_v2_sparse_fieldset(
    live: Served, generated: Generated
) -> None:
    """``?fields=id,name`` answers only those fields: the document must allow the others
    to be absent, or the generated model cannot parse the answer (a ``KeyError``)."""
    listing = generated.endpoint("get", "/api/v2/products")
    detail = generated.endpoint("get", "/api/v2/products/{product_id}")
    async with generated.client(live.url) as client:
        page = await listing.asyncio_detailed(client=client, limit=2, fields="id,name")
        product_id = page.parsed.data[0].id
        one = await detail.asyncio_detailed(product_id, client=client, fields="id,name")
    assert page.status_code == one.status_code == 200
    assert [sorted(product.to_dict()) for product in page.parsed.data] == [["id", "name"]] * 2
    assert one.parsed.to_dict() == {"id": product_id, "name": page.parsed.data[0].name}


def test_the_document_declares_the_problem_content_type(generated: Generated) -> None:
    """What the client received (``application/problem+json``) is what the document says."""
    operations = [
        ("get", "/api/v1/products"),
        ("get", "/api/v1/products/{product_id}"),
        ("post", "/api/v1/auth/token"),
        ("post", "/api/v1/orders"),
        ("get", "/api/v1/orders/{order_id}"),
    ]
    declared = {
        (method, path, status): sorted(response.get("content", {}))
        for method, path in operations
        for status, response in generated.document["paths"][path][method]["responses"].items()
        if status.startswith(("4", "5"))
    }
    assert declared
    assert {key: ["application/problem+json"] for key in declared} == declared
