"""Catalog and review mutations, over the same services as the REST writes."""

from __future__ import annotations

from typing import Any

import strawberry

from data.errors import FieldError, Invalid, InvalidInput
from data.money import cents_of
from data.services import catalog_writes, review_writes
from resolvers.context import Info
from resolvers.ids import database_id_of
from resolvers.inputs import located
from resolvers.types import Category, Product, Review


@strawberry.input(description='Money in major units: {amount: "19.99", currency: "USD"}.')
class MoneyInput:
    amount: str
    currency: str


@strawberry.input
class CreateCategoryInput:
    slug: str
    name: str


@strawberry.input
class UpdateCategoryInput:
    slug: str | None = None
    name: str | None = None


@strawberry.input
class CreateProductInput:
    sku: str
    name: str
    price: MoneyInput
    category_id: strawberry.ID = strawberry.field(description="Global or database id.")
    description: str = ""
    stock: int = 0
    is_active: bool = True


@strawberry.input(description="Fields left out (or null) keep their value.")
class UpdateProductInput:
    sku: str | None = None
    name: str | None = None
    description: str | None = None
    price: MoneyInput | None = None
    stock: int | None = None
    category_id: strawberry.ID | None = None
    is_active: bool | None = None


@strawberry.input
class CreateReviewInput:
    product_id: strawberry.ID = strawberry.field(description="Global or database id.")
    rating: int
    title: str
    body: str = ""


@strawberry.input(description="Fields left out (or null) keep their value.")
class UpdateReviewInput:
    rating: int | None = None
    title: str | None = None
    body: str | None = None


def _id_field(type_name: str, value: str, field: str) -> int:
    try:
        return database_id_of(type_name, value)
    except Invalid:
        raise InvalidInput(
            f"Not a {type_name} id.", errors=[FieldError((field,), f"not a {type_name} id")]
        ) from None


def _product_values(input: Any) -> dict[str, Any]:
    """An input object's given fields as service keywords (Money → cents, ids → ints)."""
    values = {k: v for k, v in vars(input).items() if v is not None}
    if "price" in values:
        values["price_cents"] = cents_of(values["price"].amount, values.pop("price").currency)
    if "category_id" in values:
        values["category_id"] = _id_field("Category", values["category_id"], "category_id")
    return values


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="Create a category (staff, admins, catalog:write keys).")
    async def create_category(self, info: Info, input: CreateCategoryInput) -> Category:
        with located():
            async with info.context.db.write() as session:
                row = await catalog_writes.create_category(
                    session, info.context.actor, slug=input.slug, name=input.name
                )
        return Category.of(row)

    @strawberry.mutation(description="Rename a category or change its slug.")
    async def update_category(self, info: Info, slug: str, input: UpdateCategoryInput) -> Category:
        with located():
            async with info.context.db.write() as session:
                row = await catalog_writes.update_category(
                    session,
                    info.context.actor,
                    category_slug=slug,
                    **{k: v for k, v in vars(input).items() if v is not None},
                )
        return Category.of(row)

    @strawberry.mutation(description="Delete an empty category; returns what was deleted.")
    async def delete_category(self, info: Info, slug: str) -> Category:
        async with info.context.db.write() as session:
            row = await catalog_writes.delete_category(session, info.context.actor, slug=slug)
        return Category.of(row)

    @strawberry.mutation(description="Create a product (staff, admins, catalog:write keys).")
    async def create_product(self, info: Info, input: CreateProductInput) -> Product:
        with located():
            values = _product_values(input)
            async with info.context.db.write() as session:
                row = await catalog_writes.create_product(session, info.context.actor, **values)
        return Product.of(row)

    @strawberry.mutation(description="Change a product's fields, stock or active flag.")
    async def update_product(
        self, info: Info, id: strawberry.ID, input: UpdateProductInput
    ) -> Product:
        with located():
            values = _product_values(input)
            async with info.context.db.write() as session:
                row = await catalog_writes.update_product(
                    session, info.context.actor, product_id=database_id_of("Product", id), **values
                )
        return Product.of(row)

    @strawberry.mutation(description="Delete a product never ordered; returns what was deleted.")
    async def delete_product(self, info: Info, id: strawberry.ID) -> Product:
        async with info.context.db.write() as session:
            row = await catalog_writes.delete_product(
                session, info.context.actor, product_id=database_id_of("Product", id)
            )
        return Product.of(row)

    @strawberry.mutation(description="Review a product (once per product).")
    async def create_review(self, info: Info, input: CreateReviewInput) -> Review:
        with located():
            product_id = _id_field("Product", input.product_id, "product_id")
            async with info.context.db.write() as session:
                row = await review_writes.create_review(
                    session,
                    info.context.actor,
                    product_id=product_id,
                    rating=input.rating,
                    title=input.title,
                    body=input.body,
                )
        return Review.of(row)

    @strawberry.mutation(description="Edit your own review.")
    async def update_review(
        self, info: Info, id: strawberry.ID, input: UpdateReviewInput
    ) -> Review:
        with located():
            async with info.context.db.write() as session:
                row = await review_writes.update_review(
                    session,
                    info.context.actor,
                    review_id=database_id_of("Review", id),
                    **{k: v for k, v in vars(input).items() if v is not None},
                )
        return Review.of(row)

    @strawberry.mutation(description="Delete your own review (staff: any); returns it.")
    async def delete_review(self, info: Info, id: strawberry.ID) -> Review:
        async with info.context.db.write() as session:
            row = await review_writes.delete_review(
                session, info.context.actor, review_id=database_id_of("Review", id)
            )
        return Review.of(row)
