"""The root ``Query``: each field is a short adapter over a service or a loader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import strawberry

from data.errors import Invalid, NotFound
from data.pagination import PageRequest
from data.services import categories, products
from resolvers.connections import Connection, to_connection
from resolvers.context import Context, Info
from resolvers.ids import database_id_of, from_global_id
from resolvers.types import (
    Category,
    Node,
    Order,
    Product,
    ProductFilterInput,
    ProductOrder,
    Review,
    User,
    product_sort,
)


def _node_loaders(context: Context) -> dict[str, tuple[Any, Callable[[Any], Node]]]:
    loaders = context.loaders
    return {
        "Product": (loaders.product, Product.of),
        "Category": (loaders.category, Category.of),
        "Review": (loaders.review, Review.of),
        "User": (loaders.visible_user, User.of),
        "Order": (loaders.order, Order.of),
    }


async def _load_node(context: Context, global_id: str) -> Node | None:
    type_name, database_id = from_global_id(global_id)
    loader, wrap = _node_loaders(context).get(type_name, (None, None))
    if loader is None or wrap is None:
        return None
    row = await loader.load(database_id)
    return wrap(row) if row is not None else None


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Any object by its global id.")
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        found = await _load_node(info.context, id)
        if found is None:
            raise NotFound("No object with this id.")
        return found

    @strawberry.field(description="Objects by global id, in order; null where there is none.")
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > 100:
            raise Invalid("At most 100 ids at once.")
        # Gathered, not awaited one by one, so the loaders batch them into one statement.
        found = await asyncio.gather(
            *(_load_node(info.context, i) for i in ids), return_exceptions=True
        )
        for result in found:
            if isinstance(result, BaseException):
                raise result
        return [result for result in found if not isinstance(result, BaseException)]

    @strawberry.field(description="One product by global id (or database id) or by sku.")
    async def product(
        self, info: Info, id: strawberry.ID | None = None, sku: str | None = None
    ) -> Product | None:
        context = info.context
        database_id = database_id_of("Product", id) if id is not None else None
        async with context.db.read() as session:
            row = await products.find_product(session, context.actor, id=database_id, sku=sku)
        return Product.of(row)

    @strawberry.field(description="Products the caller may see, filtered and sorted.")
    async def products(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ProductFilterInput | None = None,
        order_by: ProductOrder | None = None,
    ) -> Connection[Product]:
        context = info.context
        where = (filter or ProductFilterInput()).to_filter()
        async with context.db.read() as session:
            page = await products.list_products(
                session,
                context.actor,
                where=where,
                sort=product_sort(order_by),
                page=PageRequest(first, after, last, before),
            )
        return to_connection(
            page, Product.of, context.counter(products.count_products, where=where)
        )

    @strawberry.field(description="One category by slug.")
    async def category(self, info: Info, slug: str) -> Category | None:
        context = info.context
        async with context.db.read() as session:
            row = await categories.find_category(session, context.actor, slug=slug)
        return Category.of(row)

    @strawberry.field(description="Categories by name.")
    async def categories(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Category]:
        context = info.context
        async with context.db.read() as session:
            page = await categories.list_categories(
                session, context.actor, page=PageRequest(first, after, last, before)
            )
        return to_connection(page, Category.of, context.counter(categories.count_categories))
