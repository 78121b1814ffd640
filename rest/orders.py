"""Reading orders."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from data.services import orders
from rest.deps import ActorDep, PageDep, ReadSession
from rest.representations import Representation
from rest.responses import json_response, list_response
from rest.schemas import ListOf, OrderV1, OrderV2, ProblemOut

OrderStatus = Literal["pending", "paid", "shipped", "delivered", "cancelled"]


def orders_router(rep: Representation) -> APIRouter:
    """The order routes of one API version."""
    router = APIRouter(tags=["orders"], responses={
        code: {"model": ProblemOut} for code in (401, 403, 404, 422)
    })

    order_model = OrderV2 if rep.money_objects else OrderV1

    @router.get("/orders", responses={200: {"model": ListOf[order_model]}})  # type: ignore[valid-type]
    async def list_orders(
        request: Request, session: ReadSession, actor: ActorDep, page: PageDep,
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

    return router
