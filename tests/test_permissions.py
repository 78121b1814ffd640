"""The permission matrix: principal x operation -> outcome, through REST and GraphQL.

One table drives both interfaces, so a rule cannot differ between them. Outcomes are
normalised: ok, hidden (a field rule), unauthenticated, forbidden, not_found.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from data.models import Category, Order, OrderItem, Product, Review
from resolvers.ids import to_global_id
from tests.principals import PRINCIPALS, World
from tests.streams import READ_TIMEOUT, open_sse, open_websocket

CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    400: "invalid",
    422: "invalid",
}
GQL = {
    "UNAUTHENTICATED": "unauthenticated",
    "FORBIDDEN": "forbidden",
    "NOT_FOUND": "not_found",
    "CONFLICT": "conflict",
    "BAD_USER_INPUT": "invalid",
}


@dataclass(frozen=True)
class Operation:
    name: str
    rest: Callable[[World], tuple[str, str, dict | None]]
    graphql: Callable[[World], str]
    rest_field: str | None = None  # a field rule: present -> ok, absent -> hidden
    graphql_field: tuple[str, ...] | None = None
    # Writes run on rows of their own, made for each case, so that no case sees another's.
    setup: Callable[[World], Awaitable[Any]] | None = None
    # A live stream: judged by what arrives before the stream starts (see ``stream_outcome``).
    stream: bool = False


def gid(type_name: str, database_id: int) -> str:
    return to_global_id(type_name, database_id)


OPERATIONS = {
    op.name: op
    for op in (
        Operation(
            "list_products",
            lambda w: ("GET", "/products", None),
            lambda w: "{ products(first: 5) { edges { node { id } } } }",
        ),
        Operation(
            "get_inactive_product",
            lambda w: ("GET", f"/products/{w.inactive_product}", None),
            lambda w: f'{{ product(id: "{w.inactive_product}") {{ id }} }}',
        ),
        Operation(
            "read_stock",
            lambda w: ("GET", f"/products/{w.active_product}", None),
            lambda w: f'{{ product(id: "{w.active_product}") {{ id stock }} }}',
            rest_field="stock",
            graphql_field=("product", "stock"),
        ),
        Operation(
            "list_categories",
            lambda w: ("GET", "/categories", None),
            lambda w: "{ categories { edges { node { slug } } } }",
        ),
        Operation(
            "list_reviews",
            lambda w: ("GET", f"/products/{w.active_product}/reviews", None),
            lambda w: (
                f'{{ product(id: "{w.active_product}") '
                "{ reviews(first: 3) { edges { node { rating } } } } }"
            ),
        ),
        Operation(
            "viewer", lambda w: ("GET", "/users/me", None), lambda w: "{ viewer { id name } }"
        ),
        Operation(
            "update_viewer",
            lambda w: ("PATCH", "/users/me", {}),
            lambda w: "mutation { updateViewer(input: {}) { id } }",
        ),
        Operation(
            "get_category",
            lambda w: ("GET", "/categories/books", None),
            lambda w: '{ category(slug: "books") { id } }',
        ),
        Operation(
            "create_api_key",
            lambda w: ("POST", "/api-keys", {"name": "m", "scopes": ["catalog:read"]}),
            lambda w: (
                'mutation { createApiKey(input: {name: "m", scopes: ["catalog:read"]}) { key } }'
            ),
        ),
        Operation(
            "list_users",
            lambda w: ("GET", "/users", None),
            lambda w: "{ users(first: 3) { edges { node { id } } } }",
        ),
        Operation(
            "get_customer_user",
            lambda w: ("GET", f"/users/{w.user_ids['customer']}", None),
            lambda w: f'{{ user(id: "{gid("User", w.user_ids["customer"])}") {{ id }} }}',
        ),
        Operation(
            "read_customer_email",
            lambda w: ("GET", f"/users/{w.user_ids['customer']}", None),
            lambda w: f'{{ user(id: "{gid("User", w.user_ids["customer"])}") {{ id email }} }}',
            rest_field="email",
            graphql_field=("user", "email"),
        ),
        Operation(
            "update_customer_user",
            lambda w: ("PATCH", f"/users/{w.user_ids['customer']}", {"is_active": True}),
            lambda w: (
                f'mutation {{ updateUser(id: "{gid("User", w.user_ids["customer"])}",'
                " input: {isActive: true}) { id } }"
            ),
        ),
        Operation(
            "list_orders",
            lambda w: ("GET", "/orders", None),
            lambda w: "{ orders(first: 3) { edges { node { id } } } }",
        ),
        Operation(
            "get_customer_order",
            lambda w: ("GET", f"/orders/{w.customer_order}", None),
            lambda w: f'{{ order(id: "{gid("Order", w.customer_order)}") {{ id }} }}',
        ),
        Operation(
            "get_other_order",
            lambda w: ("GET", f"/orders/{w.other_order}", None),
            lambda w: f'{{ order(id: "{gid("Order", w.other_order)}") {{ id }} }}',
        ),
        Operation(
            "list_api_keys",
            lambda w: ("GET", "/api-keys", None),
            lambda w: "{ apiKeys(first: 3) { edges { node { id } } } }",
        ),
        Operation(
            "revoke_missing_api_key",
            lambda w: ("DELETE", "/api-keys/999999", None),
            lambda w: f'mutation {{ revokeApiKey(id: "{gid("ApiKey", 999999)}") {{ id }} }}',
        ),
    )
}

U, F, N, H = "unauthenticated", "forbidden", "not_found", "hidden"
# Columns follow PRINCIPALS: anonymous, customer, other_customer, staff, admin,
# key catalog:read, key orders:read, key catalog:write.
MATRIX: dict[str, tuple[str, ...]] = {
    "list_products": ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "get_inactive_product": (N, N, N, "ok", "ok", "ok", N, N),
    "read_stock": (H, H, H, "ok", "ok", "ok", H, H),
    "list_categories": ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "list_reviews": ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "viewer": (U, "ok", "ok", "ok", "ok", F, F, F),
    "update_viewer": (U, "ok", "ok", "ok", "ok", F, F, F),
    "get_category": ("ok", "ok", "ok", "ok", "ok", "ok", "ok", "ok"),
    "create_api_key": (U, F, F, F, "ok", F, F, F),
    "list_users": (U, F, F, "ok", "ok", F, F, F),
    "get_customer_user": (N, "ok", N, "ok", "ok", N, N, N),
    "read_customer_email": (N, "ok", N, "ok", "ok", N, N, N),
    "update_customer_user": (N, F, N, F, "ok", N, N, N),
    "list_orders": (U, "ok", "ok", "ok", "ok", F, "ok", F),
    "get_customer_order": (U, "ok", N, "ok", "ok", F, "ok", F),
    "get_other_order": (U, N, "ok", "ok", "ok", F, "ok", F),
    "list_api_keys": (U, F, F, F, "ok", F, F, F),
    "revoke_missing_api_key": (U, F, F, F, N, F, F, F),
}

# -- writes -------------------------------------------------------------------------------


async def fresh_rows(world: World) -> Any:
    """A world plus rows of this case's own: an empty category, a product the customer
    ordered and reviewed (``ordered``), and a bare product (``bare``)."""
    tag = uuid.uuid4().hex[:10]
    async with world.gateway.app.state.db.write() as session:
        home = await session.scalar(select(Category.id).order_by(Category.id).limit(1))
        category = Category(slug=f"perm-{tag}", name=f"Perm {tag}")
        ordered = Product(
            sku=f"PO-{tag}", name="Ordered", price_cents=100, stock=10, category_id=home
        )
        bare = Product(sku=f"PB-{tag}", name="Bare", price_cents=100, stock=10, category_id=home)
        session.add_all([category, ordered, bare])
        await session.flush()
        customer = world.user_ids["customer"]
        order = Order(customer_id=customer, status="pending", total_cents=100)
        review = Review(product_id=ordered.id, author_id=customer, rating=3, title="Ok")
        session.add_all([order, review])
        await session.flush()
        session.add(
            OrderItem(order_id=order.id, product_id=ordered.id, quantity=1, unit_price_cents=100)
        )
        ids = {
            "tag": tag,
            "slug": category.slug,
            "ordered": ordered.id,
            "bare": bare.id,
            "order": order.id,
            "review": review.id,
        }
    return SimpleNamespace(**vars(world), **ids)


def _price(f: Any) -> dict[str, Any]:
    """v1 takes minor units, v2 Money (``version`` is set on the rows by ``rest_outcome``)."""
    if f.version == "v1":
        return {"price_cents": 100}
    return {"price": {"amount": "1.00", "currency": "USD"}}


WRITE_OPERATIONS = (
    Operation(
        "create_category",
        lambda f: ("POST", "/categories", {"slug": f"new-{f.tag}", "name": "N"}),
        lambda f: (
            f'mutation {{ createCategory(input: {{slug: "new-{f.tag}", name: "N"}}) {{ id }} }}'
        ),
        setup=fresh_rows,
    ),
    Operation(
        "update_category",
        lambda f: ("PATCH", f"/categories/{f.slug}", {"name": "Renamed"}),
        lambda f: (
            f'mutation {{ updateCategory(slug: "{f.slug}", input: {{name: "Renamed"}}) {{ id }} }}'
        ),
        setup=fresh_rows,
    ),
    Operation(
        "delete_category",
        lambda f: ("DELETE", f"/categories/{f.slug}", None),
        lambda f: f'mutation {{ deleteCategory(slug: "{f.slug}") {{ id }} }}',
        setup=fresh_rows,
    ),
    Operation(
        "create_product",
        lambda f: (
            "POST",
            "/products",
            {"sku": f"PN-{f.tag}", "name": "New", "category": 1, "stock": 1, **_price(f)},
        ),
        lambda f: (
            f'mutation {{ createProduct(input: {{sku: "PN-{f.tag}", name: "New", '
            'categoryId: "1", price: {amount: "1.00", currency: "USD"}}) { id } }'
        ),
        setup=fresh_rows,
    ),
    Operation(
        "update_product",
        lambda f: ("PATCH", f"/products/{f.bare}", {"stock": 3}),
        lambda f: (
            f'mutation {{ updateProduct(id: "{gid("Product", f.bare)}", '
            "input: {stock: 3}) { id } }"
        ),
        setup=fresh_rows,
    ),
    Operation(
        "delete_product",
        lambda f: ("DELETE", f"/products/{f.bare}", None),
        lambda f: f'mutation {{ deleteProduct(id: "{gid("Product", f.bare)}") {{ id }} }}',
        setup=fresh_rows,
    ),
    Operation(
        "create_review",
        lambda f: ("POST", f"/products/{f.bare}/reviews", {"rating": 5, "title": "T"}),
        lambda f: (
            f'mutation {{ createReview(input: {{productId: "{f.bare}", '
            'rating: 5, title: "T"}) { id } }'
        ),
        setup=fresh_rows,
    ),
    Operation(
        "update_customer_review",
        lambda f: ("PATCH", f"/reviews/{f.review}", {"rating": 5}),
        lambda f: (
            f'mutation {{ updateReview(id: "{gid("Review", f.review)}", '
            "input: {rating: 5}) { id } }"
        ),
        setup=fresh_rows,
    ),
    Operation(
        "delete_customer_review",
        lambda f: ("DELETE", f"/reviews/{f.review}", None),
        lambda f: f'mutation {{ deleteReview(id: "{gid("Review", f.review)}") {{ id }} }}',
        setup=fresh_rows,
    ),
    Operation(
        "place_order",
        lambda f: ("POST", "/orders", {"items": [{"product_id": f.bare, "quantity": 1}]}),
        lambda f: (
            f'mutation {{ placeOrder(input: {{items: [{{productId: "{f.bare}", '
            "quantity: 1}]}) { id } }"
        ),
        setup=fresh_rows,
    ),
    Operation(
        "cancel_customer_order",
        lambda f: ("POST", f"/orders/{f.order}/cancel", None),
        lambda f: f'mutation {{ cancelOrder(id: "{gid("Order", f.order)}") {{ id }} }}',
        setup=fresh_rows,
    ),
    Operation(
        "pay_customer_order",
        lambda f: ("PATCH", f"/orders/{f.order}", {"status": "paid"}),
        lambda f: (
            f'mutation {{ updateOrderStatus(id: "{gid("Order", f.order)}", '
            'status: "paid") { id } }'
        ),
        setup=fresh_rows,
    ),
)
OPERATIONS.update({op.name: op for op in WRITE_OPERATIONS})
W = ("unauthenticated", "forbidden", "forbidden", "ok", "ok", "forbidden", "forbidden", "ok")
MATRIX.update(
    {
        "create_category": W,
        "update_category": W,
        "delete_category": W,
        "create_product": W,
        "update_product": W,
        "delete_product": W,
        "create_review": (U, "ok", "ok", "ok", "ok", F, F, F),
        "update_customer_review": (U, "ok", N, N, N, F, F, F),
        "delete_customer_review": (U, "ok", N, "ok", "ok", F, F, F),
        "place_order": (U, "ok", "ok", "ok", "ok", F, F, F),
        "cancel_customer_order": (U, "ok", N, "ok", "ok", F, F, F),
        "pay_customer_order": (U, F, N, "ok", "ok", F, F, F),
    }
)
# -- live event streams --------------------------------------------------------------------

STREAM_OPERATIONS = (
    Operation(
        "follow_customer_order",
        lambda f: ("GET", f"/orders/{f.order}/events", None),
        lambda f: (
            f'subscription {{ orderUpdated(id: "{gid("Order", f.order)}") '
            "{ databaseId status } }"
        ),
        setup=fresh_rows,
        stream=True,
    ),
)
OPERATIONS.update({op.name: op for op in STREAM_OPERATIONS})
# Who may not follow an order is told it does not exist, whoever it is.
MATRIX["follow_customer_order"] = (N, "ok", N, "ok", "ok", N, "ok", N)

CASES = [
    (op, principal, outcomes[i])
    for op, outcomes in MATRIX.items()
    for i, principal in enumerate(PRINCIPALS)
]


async def rest_outcome(world: World, op: Operation, principal: str, version: str) -> str:
    target: Any = world
    if op.setup is not None:
        target = await op.setup(world)
        target.version = version
    method, path, body = op.rest(target)
    if op.stream:
        return await sse_outcome(world, f"/api/{version}{path}", principal)
    response = await world.gateway.client.request(
        method, f"/api/{version}{path}", json=body, headers=world.headers[principal]
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] in GQL
        return CODES[response.status_code]
    if op.rest_field is not None:
        return "ok" if op.rest_field in response.json() else H
    return "ok"


async def graphql_outcome(world: World, op: Operation, principal: str) -> str:
    if op.stream:
        return await subscription_outcome(world, op, principal)
    document = op.graphql(await op.setup(world) if op.setup else world)
    body = await world.gateway.graphql(document, headers=world.headers[principal])
    errors = body.get("errors") or []
    if op.graphql_field is not None and errors and tuple(errors[0]["path"]) == op.graphql_field:
        assert errors[0]["extensions"]["code"] == "FORBIDDEN"
        assert body["data"][op.graphql_field[0]]["id"], "the rest of the data is kept"
        return H
    if errors:
        return GQL[errors[0]["extensions"]["code"]]
    return "ok"


async def sse_outcome(world: World, path: str, principal: str) -> str:
    """The status before an event stream starts: a refusal is a whole problem document."""
    async with open_sse(world.gateway.app, path, world.headers[principal]) as sse:
        if sse.status == 200:
            assert (await sse.next_message() or "").startswith("retry:")
            return "ok"
        while await sse.next_message() is not None:  # the whole refusal, then the end
            pass
        assert sse.headers["content-type"] == "application/problem+json"
        code = orjson.loads(sse.body)["code"]
        assert code in GQL
        return CODES[sse.status]


async def subscription_outcome(world: World, op: Operation, principal: str) -> str:
    """A subscription over graphql-transport-ws: its first ``next`` after a real change.

    A refusal arrives as an error at once; an accepted subscription waits for a change,
    so once the bus holds it, staff move the order with a real ``PATCH``.
    """
    rows = await op.setup(world) if op.setup else world
    bus = world.gateway.app.state.events
    async with open_websocket(world.gateway.app, "/graphql", "graphql-transport-ws") as ws:
        await ws.send_json({"type": "connection_init", "payload": world.headers[principal]})
        assert (await ws.receive_json())["type"] == "connection_ack"
        await ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": op.graphql(rows)}})
        deadline = asyncio.get_running_loop().time() + READ_TIMEOUT
        while bus.subscriber_count == 0 and ws.from_app.empty():
            assert asyncio.get_running_loop().time() < deadline, "no subscription, no answer"
            await asyncio.sleep(0.01)
        if ws.from_app.empty():  # subscribed; a refusal may still come before the event
            response = await world.gateway.client.patch(
                f"/api/v1/orders/{rows.order}",
                json={"status": "paid"},
                headers=world.headers["staff"],
            )
            assert response.status_code == 200, response.text
        message = await ws.receive_json()
        assert message["type"] == "next", message
        errors = message["payload"].get("errors") or []
        if errors:
            assert message["payload"]["data"] is None
            return GQL[errors[0]["extensions"]["code"]]
        assert message["payload"]["data"]["orderUpdated"] == {
            "databaseId": rows.order,
            "status": "paid",
        }
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
