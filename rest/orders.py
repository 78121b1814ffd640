"""Orders: reading, placing (idempotently), cancelling and changing status."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request
from pydantic import Field
from starlette.responses import Response

from data.inputs import MAX_INT
from data.models import ORDER_STATUSES
from data.services import order_writes, orders
from data.services.order_writes import MAX_KEY_LENGTH, MAX_LINES, MAX_QUANTITY, OrderLine
from rest.bodies import JsonInt, Loc, StrictBody, located
from rest.deps import ActorDep, PageDep, ReadSession, WriteSession
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


def orders_router(rep: Representation) -> APIRouter:
    """The order routes of one API version."""
    router = APIRouter(tags=["orders"], responses=problems(403, 404))

    order_model = OrderV2 if rep.money_objects else OrderV1

    @router.get("/orders", responses={200: {"model": ListOf[order_model]}})  # type: ignore[valid-type]  # the version's model, for OpenAPI
    async def list_orders(
        request: Request,
        session: ReadSession,
        actor: ActorDep,
        page: PageDep,
        status: OrderStatus | None = None,
    ) -> Response:
        """List the orders you may see (your own; all for staff and orders:read keys)."""
        result = await orders.list_orders(session, actor, status=status, page=page)
        ids = [o.id for o in result.items]
        items = dict(zip(ids, await orders.load_order_items(session, actor, ids), strict=True))
        return list_response(request, result, lambda o: rep.order(actor, o, items[o.id]))

    @router.get("/orders/{order_id}", responses={200: {"model": order_model}})
    async def get_order(
        request: Request, order_id: int, session: ReadSession, actor: ActorDep
    ) -> Response:
        """Get one order; another customer's order does not exist for you."""
        order = await orders.find_order(session, actor, order_id=order_id)
        [items] = await orders.load_order_items(session, actor, [order.id])
        return json_response(request, rep.order(actor, order, items))

    @router.post(
        "/orders", status_code=201, responses={201: {"model": order_model}, **problems(409)}
    )
    async def place_order(
        request: Request,
        body: PlaceOrderIn,
        session: WriteSession,
        actor: ActorDep,
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

    @router.post(
        "/orders/{order_id}/cancel", responses={200: {"model": order_model}, **problems(409)}
    )
    async def cancel_order(
        request: Request, order_id: int, session: WriteSession, actor: ActorDep
    ) -> Response:
        """Cancel your pending or paid order (staff: any); its stock goes back."""
        order = await order_writes.cancel_order(session, actor, order_id=order_id)
        items = await order_writes.load_items(session, order)
        return json_response(request, rep.order(actor, order, items))

    @router.patch("/orders/{order_id}", responses={200: {"model": order_model}, **problems(409)})
    async def update_order_status(
        request: Request,
        order_id: int,
        body: OrderStatusIn,
        session: WriteSession,
        actor: ActorDep,
    ) -> Response:
        """Move an order along pending → paid → shipped → delivered, or cancel it (staff)."""
        with located():
            order = await order_writes.update_order_status(
                session, actor, order_id=order_id, status=body.status
            )
        items = await order_writes.load_items(session, order)
        return json_response(request, rep.order(actor, order, items))

    return router
