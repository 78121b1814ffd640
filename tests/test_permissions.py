"""The permission matrix: principal x operation -> outcome, through REST and GraphQL.

One table drives both interfaces, so a rule cannot differ between them. Outcomes are
normalised: ok, hidden (a field rule), unauthenticated, forbidden, not_found.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from resolvers.ids import to_global_id
from tests.principals import PRINCIPALS, World

CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 409: "conflict",
         400: "invalid", 422: "invalid"}
GQL = {"UNAUTHENTICATED": "unauthenticated", "FORBIDDEN": "forbidden",
       "NOT_FOUND": "not_found", "CONFLICT": "conflict", "BAD_USER_INPUT": "invalid"}


@dataclass(frozen=True)
class Operation:
    name: str
    rest: Callable[[World], tuple[str, str, dict | None]]
    graphql: Callable[[World], str]
    rest_field: str | None = None  # a field rule: present -> ok, absent -> hidden
    graphql_field: tuple[str, ...] | None = None


def gid(type_name: str, database_id: int) -> str:
    return to_global_id(type_name, database_id)


OPERATIONS = {
    op.name: op for op in (
        Operation("list_products", lambda w: ("GET", "/products", None),
                  lambda w: "{ products(first: 5) { edges { node { id } } } }"),
        Operation("get_inactive_product",
                  lambda w: ("GET", f"/products/{w.inactive_product}", None),
                  lambda w: f'{{ product(id: "{w.inactive_product}") {{ id }} }}'),
        Operation("read_stock", lambda w: ("GET", f"/products/{w.active_product}", None),
                  lambda w: f'{{ product(id: "{w.active_product}") {{ id stock }} }}',
                  rest_field="stock", graphql_field=("product", "stock")),
        Operation("list_categories", lambda w: ("GET", "/categories", None),
                  lambda w: "{ categories { edges { node { slug } } } }"),
        Operation("list_reviews", lambda w: ("GET", f"/products/{w.active_product}/reviews", None),
                  lambda w: f'{{ product(id: "{w.active_product}") '
                            "{ reviews(first: 3) { edges { node { rating } } } } }"),
        Operation("viewer", lambda w: ("GET", "/users/me", None),
                  lambda w: "{ viewer { id name } }"),
        Operation("update_viewer", lambda w: ("PATCH", "/users/me", {}),
                  lambda w: "mutation { updateViewer(input: {}) { id } }"),
        Operation("get_category", lambda w: ("GET", "/categories/books", None),
                  lambda w: '{ category(slug: "books") { id } }'),
        Operation("create_api_key",
                  lambda w: ("POST", "/api-keys", {"name": "m", "scopes": ["catalog:read"]}),
                  lambda w: 'mutation { createApiKey(input: {name: "m", '
                            'scopes: ["catalog:read"]}) { key } }'),
        Operation("list_users", lambda w: ("GET", "/users", None),
                  lambda w: "{ users(first: 3) { edges { node { id } } } }"),
        Operation("get_customer_user",
                  lambda w: ("GET", f"/users/{w.user_ids['customer']}", None),
                  lambda w: f'{{ user(id: "{gid("User", w.user_ids["customer"])}") {{ id }} }}'),
        Operation("read_customer_email",
                  lambda w: ("GET", f"/users/{w.user_ids['customer']}", None),
                  lambda w: f'{{ user(id: "{gid("User", w.user_ids["customer"])}") '
                            "{ id email } }",
                  rest_field="email", graphql_field=("user", "email")),
        Operation("update_customer_user",
                  lambda w: ("PATCH", f"/users/{w.user_ids['customer']}", {"is_active": True}),
                  lambda w: f'mutation {{ updateUser(id: "{gid("User", w.user_ids["customer"])}",'
                            " input: {isActive: true}) { id } }"),
        Operation("list_orders", lambda w: ("GET", "/orders", None),
                  lambda w: "{ orders(first: 3) { edges { node { id } } } }"),
        Operation("get_customer_order", lambda w: ("GET", f"/orders/{w.customer_order}", None),
                  lambda w: f'{{ order(id: "{gid("Order", w.customer_order)}") {{ id }} }}'),
        Operation("get_other_order", lambda w: ("GET", f"/orders/{w.other_order}", None),
                  lambda w: f'{{ order(id: "{gid("Order", w.other_order)}") {{ id }} }}'),
        Operation("list_api_keys", lambda w: ("GET", "/api-keys", None),
                  lambda w: "{ apiKeys(first: 3) { edges { node { id } } } }"),
        Operation("revoke_missing_api_key", lambda w: ("DELETE", "/api-keys/999999", None),
                  lambda w: f'mutation {{ revokeApiKey(id: "{gid("ApiKey", 999999)}") {{ id }} }}'),
    )
}

U, F, N, H = "unauthenticated", "forbidden", "not_found", "hidden"
# Columns follow PRINCIPALS: anonymous, customer, other_customer, staff, admin,
# key catalog:read, key orders:read, key catalog:write.
MATRIX: dict[str, tuple[str, ...]] = {
    "list_products":          ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "get_inactive_product":   (N, N, N, "ok", "ok", "ok", N, N),
    "read_stock":             (H, H, H, "ok", "ok", "ok", H, H),
    "list_categories":        ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "list_reviews":           ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "viewer":                 (U, "ok", "ok", "ok", "ok", F, F, F),
    "update_viewer":          (U, "ok", "ok", "ok", "ok", F, F, F),
    "get_category":           ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "create_api_key":         (U, F, F, F, "ok", F, F, F),
    "list_users":             (U, F, F, "ok", "ok", F, F, F),
    "get_customer_user":      (N, "ok", N, "ok", "ok", N, N, N),
    "read_customer_email":    (N, "ok", N, "ok", "ok", N, N, N),
    "update_customer_user":   (N, F, N, F, "ok", N, N, N),
    "list_orders":            (U, "ok", "ok", "ok", "ok", F, "ok", F),
    "get_customer_order":     (U, "ok", N, "ok", "ok", F, "ok", F),
    "get_other_order":        (U, N, "ok", "ok", "ok", F, "ok", F),
    "list_api_keys":          (U, F, F, F, "ok", F, F, F),
    "revoke_missing_api_key": (U, F, F, F, N, F, F, F),
}
CASES = [(op, principal, outcomes[i]) for op, outcomes in MATRIX.items()
         for i, principal in enumerate(PRINCIPALS)]


async def rest_outcome(world: World, op: Operation, principal: str, version: str) -> str:
    method, path, body = op.rest(world)
    response = await world.gateway.client.request(
        method, f"/api/{version}{path}", json=body, headers=world.headers[principal])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] in GQL
        return CODES[response.status_code]
    if op.rest_field is not None:
        return "ok" if op.rest_field in response.json() else H
    return "ok"


async def graphql_outcome(world: World, op: Operation, principal: str) -> str:
    body = await world.gateway.graphql(op.graphql(world), headers=world.headers[principal])
    errors = body.get("errors") or []
    if op.graphql_field is not None and errors and tuple(errors[0]["path"]) == op.graphql_field:
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        assert body["data"][op.graphql_field[0]]["id"], "the rest of the data is kept"
        return H
    if errors:
        return GQL[errors[0]["extensions"]["code"]]
    return "ok"


Outcome = Callable[[World, Operation, str], Awaitable[str]]
INTERFACES: dict[str, Outcome] = {
    "rest_v1": lambda w, op, p: rest_outcome(w, op, p, "v1"),
    "rest_v2": lambda w, op, p: rest_outcome(w, op, p, "v2"),
    "graphql": graphql_outcome,
}


@pytest.mark.parametrize("interface", list(INTERFACES))
@pytest.mark.parametrize(("operation", "principal", "expected"), CASES)
async def test_permission_matrix(
    world: World, interface: str, operation: str, principal: str, expected: str
) -> None:
    outcome = await INTERFACES[interface](world, OPERATIONS[operation], principal)
    assert outcome == expected, f"{interface}: {principal} {operation}"
