"""Orders: reading, placing (idempotently), cancelling and changing status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import Field
from starlette.responses import Response

from data.inputs import MAX_INT
from data.models import ORDER_STATUSES
from data.services import order_writes, orders
from data.services.order_writes import MAX_KEY_LENGTH, MAX_LINES, MAX_QUANTITY, OrderLine
from rest.bodies import JsonInt, Loc, StrictBody, located
from rest.deps import (
    ROUTE_CLASSES,
    ActorDep,
    PageDep,
    ReadSession,
    RepresentationDep,
    WriteSession,
)
from rest.openapi import problems
from rest.representations import Representation
from rest.responses import json_response, list_response
from rest.schemas import ListOf, OrderV1, OrderV2

OrderStatus = Literal["pending", "paid", "shipped", "delivered", "cancelled"]
KEY_HEADER: dict[Loc, Loc] = {("idempotency_key",): ("header", "Idempotency-Key")}


class OrderLineIn(StrictBody):
    # Strict: 1.5, "1", true and null are refused, not coerced.
    product_id: JsonInt = Field(ge=1, le=MAX_INT)
    quantity: JsonInt = Field(ge=1, le=MAX_QUANTITY)


class PlaceOrderIn(StrictBody):
    """The server owns prices, totals, status and the customer: sending any is a 422."""

    items: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)


class OrderStatusIn(StrictBody):
    status: str = Field(
        max_length=16,
        examples=["paid", "shipped", "delivered", "cancelled"],
        json_schema_extra={"enum": list(ORDER_STATUSES)},
    )


async def list_orders(
    request: Request,
    session: ReadSession,
    actor: ActorDep,
    rep: RepresentationDep,
    page: PageDep,
    status: OrderStatus | None = None,
) -> Response:
    """List the orders you may see (your own; all for staff and orders:read keys)."""
    result = await orders.list_orders(session, actor, status=status, page=page)
    ids = [o.id for o in result.items]
    items = dict(zip(ids, await orders.load_order_items(session, actor, ids), strict=True))
    return list_response(request, result, lambda o: rep.order(actor, o, items[o.id]))


async def get_order(
    request: Request, order_id: int, session: ReadSession, actor: ActorDep, rep: RepresentationDep
) -> Response:
    """Get one order; another customer's order does not exist for you."""
    order = await orders.find_order(session, actor, order_id=order_id)
    [items] = await orders.load_order_items(session, actor, [order.id])
    return json_response(request, rep.order(actor, order, items))


async def place_order(
    request: Request,
    body: PlaceOrderIn,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Makes retries safe: the same key and body give the same order.",
            json_schema_extra={"pattern": rf"^[ -~]{{1,{MAX_KEY_LENGTH}}}$"},
        ),
    ] = None,
) -> Response:
    """Place an order for yourself; prices come from the catalog, stock is reserved."""
    lines = [OrderLine(i.product_id, i.quantity) for i in body.items]
    with located(renames=KEY_HEADER):
        order, items = await order_writes.place_order(
            session, actor, lines=lines, idempotency_key=idempotency_key
        )
    return json_response(request, rep.order(actor, order, items), status=201)


async def cancel_order(
    request: Request, order_id: int, session: WriteSession, actor: ActorDep, rep: RepresentationDep
) -> Response:
    """Cancel your pending or paid order (staff: any); its stock goes back."""
    order = await order_writes.cancel_order(session, actor, order_id=order_id)
    items = await order_writes.load_items(session, order)
    return json_response(request, rep.order(actor, order, items))


async def update_order_status(
    request: Request,
    order_id: int,
    body: OrderStatusIn,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Move an order along pending → paid → shipped → delivered, or cancel it (staff)."""
    with located():
        order = await order_writes.update_order_status(
            session, actor, order_id=order_id, status=body.status
        )
    items = await order_writes.load_items(session, order)
    return json_response(request, rep.order(actor, order, items))


def orders_router(rep: Representation) -> APIRouter:
    """The order routes of one API version: the handlers above, documented with its model."""
    router = APIRouter(
        tags=["orders"], responses=problems(403, 404), route_class=ROUTE_CLASSES[rep.version]
    )
    model = OrderV2 if rep.money_objects else OrderV1
    listed: Any = ListOf[model]  # type: ignore[valid-type]  # the version's model, for OpenAPI
    router.add_api_route(
        "/orders", list_orders, methods=["GET"], responses={200: {"model": listed}}
    )
    router.add_api_route(
        "/orders/{order_id}", get_order, methods=["GET"], responses={200: {"model": model}}
    )
    router.add_api_route(
        "/orders",
        place_order,
        methods=["POST"],
        status_code=201,
        responses={201: {"model": model}, **problems(409)},
    )
    router.add_api_route(
        "/orders/{order_id}/cancel",
        cancel_order,
        methods=["POST"],
        responses={200: {"model": model}, **problems(409)},
    )
    router.add_api_route(
        "/orders/{order_id}",
        update_order_status,
        methods=["PATCH"],
        responses={200: {"model": model}, **problems(409)},
    )
    return router
