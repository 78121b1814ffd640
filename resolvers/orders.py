"""Order mutations: placeOrder, cancelOrder, updateOrderStatus."""

from __future__ import annotations

import strawberry

from data.errors import FieldError, Invalid, InvalidInput
from data.services import order_writes
from data.services.order_writes import OrderLine
from resolvers.context import Info
from resolvers.ids import database_id_of
from resolvers.inputs import located
from resolvers.types import Order


@strawberry.input
class OrderLineInput:
    product_id: strawberry.ID = strawberry.field(description="Global or database id.")
    quantity: int = strawberry.field(description="1 to 1,000.")


@strawberry.input(description="The server owns prices, totals, status and the customer.")
class PlaceOrderInput:
    items: list[OrderLineInput]
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Makes retries safe: the same key and items give the "
        "same order; other items with it are a CONFLICT.",
    )


def _lines(items: list[OrderLineInput]) -> list[OrderLine]:
    lines, errors = [], []
    for i, item in enumerate(items):
        try:
            product_id: int | None = database_id_of("Product", item.product_id)
        except Invalid:
            product_id = None
            errors.append(FieldError(("items", i, "product_id"), "not a product id"))
        lines.append(OrderLine(product_id, item.quantity))
    if errors:
        raise InvalidInput("Invalid order items.", errors=errors)
    return lines


@strawberry.type
class OrderMutation:
    @strawberry.mutation(description="Place an order for yourself; stock is reserved.")
    async def place_order(self, info: Info, input: PlaceOrderInput) -> Order:
        with located(("input",)):
            lines = _lines(input.items)
            async with info.context.db.write() as session:
                row, _ = await order_writes.place_order(
                    session, info.context.actor, lines=lines, idempotency_key=input.idempotency_key
                )
        return Order.of(row)

    @strawberry.mutation(description="Cancel your pending or paid order; stock goes back.")
    async def cancel_order(self, info: Info, id: strawberry.ID) -> Order:
        async with info.context.db.write() as session:
            row = await order_writes.cancel_order(
                session, info.context.actor, order_id=database_id_of("Order", id)
            )
        return Order.of(row)

    @strawberry.mutation(description="Move an order along the status machine (staff).")
    async def update_order_status(self, info: Info, id: strawberry.ID, status: str) -> Order:
        with located(()):
            async with info.context.db.write() as session:
                row = await order_writes.update_order_status(
                    session, info.context.actor, order_id=database_id_of("Order", id), status=status
                )
        return Order.of(row)
