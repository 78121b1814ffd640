"""Accounts through both interfaces, and nested GraphQL paths that must not leak."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.ids import to_global_id
from tests.principals import World, login

REGISTER = "mutation($i: RegisterInput!) { register(input: $i) { databaseId email role } }"


async def test_sign_up_makes_customers_only(world: World) -> None:
    client = world.gateway.client
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "Sally@Example.com", "password": "sally-password", "name": "Sally"},
    )
    assert response.status_code == 201
    assert response.json()["role"] == "customer"
    assert response.json()["email"] == "sally@example.com"
    smuggled = await client.post(
        "/api/v1/auth/register",
        json={
            "email": "mallory@example.com",
            "password": "mallory-password",
            "name": "M",
            "role": "admin",
        },
    )
    assert smuggled.status_code == 422
    assert smuggled.json()["code"] == "BAD_USER_INPUT"
    body = await world.gateway.graphql(
        REGISTER,
        {
            "i": {
                "email": "mallory@example.com",
                "password": "mallory-password",
                "name": "M",
                "role": "admin",
            }
        },
    )
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    body = await world.gateway.graphql(
        REGISTER, {"i": {"email": "gina@example.com", "password": "gina-password", "name": "Gina"}}
    )
    assert body["data"]["register"]["role"] == "customer"
    assert body["data"]["register"]["email"] == "gina@example.com"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"email": "customer@example.com", "password": "whatever-pass", "name": "Dup"}, 409),
        ({"email": "not-an-email", "password": "whatever-pass", "name": "X"}, 400),
        ({"email": "short@example.com", "password": "short", "name": "X"}, 400),
    ],
)
async def test_sign_up_errors_match_in_both_interfaces(
    world: World, payload: dict[str, str], code: int
) -> None:
    response = await world.gateway.client.post("/api/v1/auth/register", json=payload)
    assert response.status_code == code
    expected = {409: "CONFLICT", 400: "BAD_USER_INPUT"}[code]
    assert response.json()["code"] == expected
    body = await world.gateway.graphql(REGISTER, {"i": payload})
    assert body["errors"][0]["extensions"]["code"] == expected


async def test_login_failures_look_alike(world: World) -> None:
    client = world.gateway.client
    unknown = await client.post(
        "/api/v1/auth/token", data={"username": "nobody@example.com", "password": "demo-password"}
    )
    wrong = await client.post(
        "/api/v1/auth/token",
        data={"username": "customer@example.com", "password": "wrong-password"},
    )
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k != "request_id"}  # noqa: E731
    assert strip(unknown.json()) == strip(wrong.json())
    mutation = (
        'mutation($e: String!) { login(email: $e, password: "wrong-password") { accessToken } }'
    )
    a = await world.gateway.graphql(mutation, {"e": "nobody@example.com"})
    b = await world.gateway.graphql(mutation, {"e": "customer@example.com"})
    assert a["errors"][0]["message"] == b["errors"][0]["message"]
    assert a["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_viewer_edits_own_profile(world: World) -> None:
    client = world.gateway.client
    await client.post(
        "/api/v1/auth/register",
        json={"email": "edit@example.com", "password": "edit-password", "name": "Ed"},
    )
    tokens = await login(world.gateway, "edit@example.com", "edit-password")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.patch("/api/v1/users/me", json={"name": "Edward"}, headers=headers)
    assert response.status_code == 200
    assert response.json()["name"] == "Edward"
    taken = await client.patch(
        "/api/v1/users/me", json={"email": "customer@example.com"}, headers=headers
    )
    # A taken address is neither taken over nor refused (that would reveal it exists).
    assert taken.status_code == 200
    assert taken.json()["email"] == "edit@example.com"
    no_current = await client.patch(
        "/api/v1/users/me", json={"password": "new-password-1"}, headers=headers
    )
    assert no_current.status_code == 403
    body = await world.gateway.graphql(
        'mutation { updateViewer(input: {name: "Eddie"}) { name email } }', headers=headers
    )
    assert body["data"]["updateViewer"] == {"name": "Eddie", "email": "edit@example.com"}
    role = await client.patch("/api/v1/users/me", json={"role": "admin"}, headers=headers)
    assert role.status_code == 422
    me = await client.get("/api/v2/users/me", headers=headers)
    assert me.json()["role"] == "customer"


async def test_admin_changes_roles_and_it_takes_effect_at_once(world: World) -> None:
    client, admin = world.gateway.client, world.headers["admin"]
    await client.post(
        "/api/v1/auth/register",
        json={"email": "promo@example.com", "password": "promo-password", "name": "Pro"},
    )
    tokens = await login(world.gateway, "promo@example.com", "promo-password")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = (await client.get("/api/v1/users/me", headers=headers)).json()
    assert (await client.get("/api/v1/users", headers=headers)).status_code == 403
    body = await world.gateway.graphql(
        f'mutation {{ updateUser(id: "{to_global_id("User", me["id"])}", '
        'input: {role: "staff"}) { role } }',
        headers=admin,
    )
    assert body["data"]["updateUser"]["role"] == "staff"
    assert (await client.get("/api/v1/users", headers=headers)).status_code == 200
    bad = await client.patch(f"/api/v1/users/{me['id']}", json={"role": "overlord"}, headers=admin)
    assert bad.status_code == 400


WALK = """
{ products(first: 100) { edges { node { databaseId reviews(first: 20) { edges { node {
    author { databaseId name email orders(first: 100) { edges { node {
        databaseId customer { databaseId email } items { product { databaseId } } } } } }
} } } } } } }
"""


def _collect(body: dict[str, Any]) -> tuple[set[int], set[str], set[int]]:
    orders, emails, customers = set(), set(), set()
    for product in body["data"]["products"]["edges"]:
        for review in product["node"]["reviews"]["edges"]:
            author = review["node"]["author"]
            if author["email"]:
                emails.add(author["email"])
            for order in author["orders"]["edges"]:
                orders.add(order["node"]["databaseId"])
                customers.add(order["node"]["customer"]["databaseId"])
                if order["node"]["customer"]["email"]:
                    emails.add(order["node"]["customer"]["email"])
    return orders, emails, customers


@pytest.mark.parametrize(
    "principal",
    ["anonymous", "customer", "other_customer", "key_catalog_read", "key_orders_read", "staff"],
)
async def test_nested_paths_show_only_what_the_principal_may_see(
    world: World, principal: str
) -> None:
    body = await world.gateway.graphql(WALK, headers=world.headers[principal])
    orders, emails, customers = _collect(body)
    codes = {e["extensions"]["code"] for e in body.get("errors", [])}
    assert codes <= {"FORBIDDEN"}
    for error in body.get("errors", []):
        assert error["path"][-1] == "email"
    if principal == "staff":
        assert len(customers) > 1
        assert len(emails) > 1
        return
    if principal == "key_orders_read":
        assert len(customers) > 1
    elif principal in ("customer", "other_customer"):
        assert customers <= {world.user_ids[principal]}
    else:
        assert orders == set()
    own = {"customer": "customer@example.com", "other_customer": "other@example.com"}
    assert emails <= {own.get(principal)}


async def test_other_customers_order_does_not_exist_by_any_id(world: World) -> None:
    headers = world.headers["customer"]
    other = to_global_id("Order", world.other_order)
    body = await world.gateway.graphql(f'{{ node(id: "{other}") {{ id }} }}', headers=headers)
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    mine = to_global_id("Order", world.customer_order)
    body = await world.gateway.graphql(
        f'{{ nodes(ids: ["{other}", "{mine}"]) {{ id }} }}', headers=headers
    )
    assert body["data"]["nodes"] == [None, {"id": mine}]
    listed = (await world.gateway.client.get("/api/v1/orders?limit=100", headers=headers)).json()
    assert world.other_order not in {o["id"] for o in listed["data"]}
    assert {o["customer"] for o in listed["data"]} == {world.user_ids["customer"]}


async def test_nodes_are_batched(world: World) -> None:
    ids = [to_global_id("Product", i) for i in range(1, 31)]
    with world.gateway.count_statements() as counter:
        body = await world.gateway.graphql(
            "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids}
        )
    assert len(body["data"]["nodes"]) == 30
    assert counter.count == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_bodies_match_their_openapi_models(world: World, version: str) -> None:
    from pydantic import BaseModel

    from rest import schemas

    def check(model: type[BaseModel], body: dict[str, Any]) -> None:
        model.model_validate(body)
        assert set(body) <= set(model.model_fields), set(body) - set(model.model_fields)

    client, admin = world.gateway.client, world.headers["admin"]
    check(schemas.UserOut, (await client.get(f"/api/{version}/users/me", headers=admin)).json())
    orders = (await client.get(f"/api/{version}/orders", headers=admin)).json()
    order_model = schemas.OrderV1 if version == "v1" else schemas.OrderV2
    assert orders["data"]
    for order in orders["data"]:
        check(order_model, order)
        item_model = schemas.OrderItemV1 if version == "v1" else schemas.OrderItemV2
        for item in order["items"]:
            check(item_model, item)
    for key in (await client.get(f"/api/{version}/api-keys", headers=admin)).json()["data"]:
        check(schemas.ApiKeyOut, key)
    spec = (await client.get("/openapi.json")).json()
    for path in ("/users/me", "/users", "/orders", "/orders/{order_id}", "/api-keys"):
        assert f"/api/{version}{path}" in spec["paths"]


BIG = 2**40


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", f"/users/{BIG}", None, 404),
        ("PATCH", f"/users/{BIG}", {"name": "x"}, 404),
        ("GET", f"/orders/{BIG}", None, 404),
        ("DELETE", f"/api-keys/{BIG}", None, 404),
        ("POST", "/api-keys", {"name": "nul\x00", "scopes": []}, 400),
        ("PATCH", "/users/me", {"name": "nul\x00"}, 400),
    ],
)
async def test_unstorable_input_is_never_a_server_error(
    world: World, method: str, path: str, body: Any, status: int
) -> None:
    response = await world.gateway.client.request(
        method, f"/api/v1{path}", json=body, headers=world.headers["admin"]
    )
    assert response.status_code == status, response.text


async def test_unstorable_credentials_are_ordinary_failures(world: World) -> None:
    client = world.gateway.client
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "nul\x00@example.com", "password": "long-enough", "name": "N"},
    )
    assert response.status_code == 400
    response = await client.post(
        "/api/v1/auth/token", data={"username": "nul\x00@example.com", "password": "long-enough"}
    )
    assert response.status_code == 401
    body = await world.gateway.graphql(
        f'{{ user(id: "{to_global_id("User", BIG)}") {{ id }} }}', headers=world.headers["admin"]
    )
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_an_empty_page_size_is_bad_input_in_both_interfaces(world: World) -> None:
    response = await world.gateway.client.get("/api/v1/products?limit=0")
    assert response.status_code == 422
    body = await world.gateway.graphql("{ products(first: 0) { totalCount } }")
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
