"""The catalog's GraphQL object types. Field rules come from ``data.policy``."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from data import models
from data.actor import Actor
from data.errors import Forbidden
from data.loaders import ProductPageArgs
from data.money import CURRENCY, as_utc, format_amount
from data.pagination import PageRequest
from data.policy import can_read_private_user_fields, can_read_stock
from data.services.products import DEFAULT_PRODUCT_SORT, ProductFilter
from resolvers.connections import Connection, to_connection
from resolvers.context import Info
from resolvers.ids import to_global_id


@strawberry.interface(description="An object with a global id.")
class Node:
    id: strawberry.ID = strawberry.field(description="Global, opaque id.")
    database_id: int = strawberry.field(description="The id used by the REST API.")


@strawberry.type
class Money:
    amount: str = strawberry.field(description='Decimal string in major units, e.g. "19.99".')
    currency: str

    @classmethod
    def of(cls, cents: int) -> Money:
        return cls(amount=format_amount(cents), currency=CURRENCY)


@strawberry.enum
class OrderDirection(Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.enum
class ProductOrderField(Enum):
    CREATED_AT = "created_at"
    PRICE = "price"
    NAME = "name"


@strawberry.input
class ProductOrder:
    field: ProductOrderField
    direction: OrderDirection = OrderDirection.ASC

    @property
    def sort(self) -> str:
        return ("-" if self.direction is OrderDirection.DESC else "") + self.field.value


@strawberry.input
class ProductFilterInput:
    category: str | None = strawberry.field(default=None, description="Category slug.")
    q: str | None = strawberry.field(default=None, description="Name search.")
    min_price: int | None = strawberry.field(default=None, description="Minor units.")
    max_price: int | None = strawberry.field(default=None, description="Minor units.")
    in_stock: bool | None = None

    def to_filter(self, category: str | None = None) -> ProductFilter:
        return ProductFilter(
            category=category if category is not None else self.category,
            q=self.q,
            min_price=self.min_price,
            max_price=self.max_price,
            in_stock=self.in_stock,
        )


def product_sort(order_by: ProductOrder | None) -> str:
    return order_by.sort if order_by is not None else DEFAULT_PRODUCT_SORT


@strawberry.type
class User(Node):
    name: str
    row: strawberry.Private[models.User]
    # Who the private fields are checked for: the caller, or the new user after sign-up.
    seen_as: strawberry.Private[Actor | None] = None

    @classmethod
    def of(cls, row: models.User, seen_as: Actor | None = None) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", row.id)),
            database_id=row.id,
            name=row.name,
            row=row,
            seen_as=seen_as,
        )

    def _private(self, info: Info) -> models.User:
        if not can_read_private_user_fields(self.seen_as or info.context.actor, self.row):
            raise Forbidden("Only this user and staff may see this field.")
        return self.row

    @strawberry.field(description="Only for this user, staff and admins.")
    def email(self, info: Info) -> str | None:
        return self._private(info).email

    @strawberry.field(description="Only for this user, staff and admins.")
    def role(self, info: Info) -> str | None:
        return self._private(info).role

    @strawberry.field(description="Only for this user, staff and admins.")
    def is_active(self, info: Info) -> bool | None:
        return self._private(info).is_active

    @strawberry.field(description="Only for this user, staff and admins.")
    def created_at(self, info: Info) -> datetime | None:
        return as_utc(self._private(info).created_at)

    @strawberry.field(description="This user's orders that you may see (none for others).")
    async def orders(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: str | None = None,
    ) -> Connection[Order]:
        loaders = info.context.loaders
        page = await loaders.customer_orders.load(
            (self.database_id, (PageRequest(first, after), status))
        )
        return to_connection(
            page, Order.of, lambda: loaders.customer_order_count.load((self.database_id, status))
        )

    @strawberry.field(description="This user's reviews, newest first.")
    async def reviews(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Review]:
        loaders = info.context.loaders
        page = await loaders.author_reviews.load((self.database_id, PageRequest(first, after)))
        return to_connection(
            page, Review.of, lambda: loaders.author_review_count.load(self.database_id)
        )


@strawberry.type
class Category(Node):
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def of(cls, row: models.Category) -> Category:
        return cls(
            id=strawberry.ID(to_global_id("Category", row.id)),
            database_id=row.id,
            slug=row.slug,
            name=row.name,
            created_at=as_utc(row.created_at),
        )

    @strawberry.field(description="The category's products, batched across categories.")
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
        loaders = info.context.loaders
        where = (filter or ProductFilterInput()).to_filter()
        args = ProductPageArgs(
            where=where, sort=product_sort(order_by), page=PageRequest(first, after, last, before)
        )
        page = await loaders.category_products.load((self.database_id, args))
        return to_connection(
            page,
            Product.of,
            lambda: loaders.category_product_count.load((self.database_id, where)),
        )


@strawberry.type
class Review(Node):
    rating: int
    title: str
    body: str
    created_at: datetime
    row: strawberry.Private[models.Review]

    @classmethod
    def of(cls, row: models.Review) -> Review:
        return cls(
            id=strawberry.ID(to_global_id("Review", row.id)),
            database_id=row.id,
            rating=row.rating,
            title=row.title,
            body=row.body,
            created_at=as_utc(row.created_at),
            row=row,
        )

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        row = await info.context.loaders.user.load(self.row.author_id)
        return User.of(row) if row else None

    @strawberry.field
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product.load(self.row.product_id)
        return Product.of(row) if row else None


@strawberry.type
class Product(Node):
    sku: str
    name: str
    description: str
    price: Money
    in_stock: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Product]

    @classmethod
    def of(cls, row: models.Product) -> Product:
        return cls(
            id=strawberry.ID(to_global_id("Product", row.id)),
            database_id=row.id,
            sku=row.sku,
            name=row.name,
            description=row.description,
            price=Money.of(row.price_cents),
            in_stock=row.in_stock,
            is_active=row.is_active,
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            row=row,
        )

    @strawberry.field(description="Units in stock: staff, admins and `catalog:read` keys only.")
    def stock(self, info: Info) -> int | None:
        if not can_read_stock(info.context.actor):
            raise Forbidden("Only staff and catalog:read keys may see stock.")
        return self.row.stock

    @strawberry.field
    async def category(self, info: Info) -> Category | None:
        row = await info.context.loaders.category.load(self.row.category_id)
        return Category.of(row) if row else None

    @strawberry.field(description="Reviews, newest first; batched across products.")
    async def reviews(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Review]:
        loaders = info.context.loaders
        page = await loaders.product_reviews.load((self.database_id, PageRequest(first, after)))

        async def count() -> int:
            total, _ = await loaders.review_stats.load(self.database_id)
            return total

        return to_connection(page, Review.of, count)

    @strawberry.field(description="Mean rating of the reviews, or null without reviews.")
    async def average_rating(self, info: Info) -> float | None:
        _, average = await info.context.loaders.review_stats.load(self.database_id)
        return average


@strawberry.type
class OrderItem:
    quantity: int
    unit_price: Money
    subtotal: Money
    row: strawberry.Private[models.OrderItem]

    @classmethod
    def of(cls, row: models.OrderItem) -> OrderItem:
        return cls(
            quantity=row.quantity,
            unit_price=Money.of(row.unit_price_cents),
            subtotal=Money.of(row.subtotal_cents),
            row=row,
        )

    @strawberry.field(description="Null when the product no longer exists for you.")
    async def product(self, info: Info) -> Product | None:
        row = await info.context.loaders.product.load(self.row.product_id)
        return Product.of(row) if row else None


@strawberry.type
class Order(Node):
    status: str
    total: Money
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.Order]

    @classmethod
    def of(cls, row: models.Order) -> Order:
        return cls(
            id=strawberry.ID(to_global_id("Order", row.id)),
            database_id=row.id,
            status=row.status,
            total=Money.of(row.total_cents),
            created_at=as_utc(row.created_at),
            updated_at=as_utc(row.updated_at),
            row=row,
        )

    @strawberry.field
    async def customer(self, info: Info) -> User | None:
        row = await info.context.loaders.user.load(self.row.customer_id)
        return User.of(row) if row else None

    @strawberry.field
    async def items(self, info: Info) -> list[OrderItem]:
        rows = await info.context.loaders.order_items.load(self.database_id)
        return [OrderItem.of(row) for row in rows]
