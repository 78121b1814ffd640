"""What the catalog should answer, read straight from the database.

Orders come from one plain ``ORDER BY`` query per sort (no cursors, no limits), so they
are independent of the keyset code under test and use the database's own collation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from data.models import Category, Product, Review, User
from tests.adapters import money_of_cents
from tests.conftest import Gateway

SORT_COLUMNS: dict[str, tuple[Any, ...]] = {
    "created_at": (Product.created_at, Product.id),
    "price": (Product.price_cents, Product.id),
    "name": (Product.name, Product.id),
}
SORTS = ("-created_at", "created_at", "price", "-price", "name", "-name")


@dataclass
class Catalog:
    """Every row of the seeded catalog, as the test sees it."""

    products: dict[int, Product]
    categories: list[Category]  # by name, id
    reviews: list[Review]  # newest first
    users: dict[int, User]
    orders: dict[str, list[int]]  # sort -> every product id (active or not) in that order

    def active_ids(self, sort: str = "-created_at", **filters: Any) -> list[int]:
        """Ids of the products an anonymous caller sees, filtered, in ``sort`` order."""
        category_ids = {c.id for c in self.categories if c.slug == filters.get("category")}
        q = (filters.get("q") or "").lower()

        def keep(p: Product) -> bool:
            return (
                p.is_active
                and ("category" not in filters or p.category_id in category_ids)
                and q in p.name.lower()
                and p.price_cents >= filters.get("min_price", 0)
                and p.price_cents <= filters.get("max_price", 10**9)
                and ("in_stock" not in filters or (p.stock > 0) == filters["in_stock"])
            )

        return [i for i in self.orders[sort] if keep(self.products[i])]

    def reviews_of(self, product_id: int) -> list[Review]:
        return [r for r in self.reviews if r.product_id == product_id]

    def product_body(self, product_id: int) -> dict[str, Any]:
        """A product normalised as the adapters normalise them."""
        p = self.products[product_id]
        return {
            "id": p.id,
            "sku": p.sku,
            "name": p.name,
            "description": p.description,
            "in_stock": p.stock > 0,
            "category": p.category_id,
            "is_active": p.is_active,
            "price": money_of_cents(p.price_cents, "USD"),
            "created_at": utc(p.created_at),
            "updated_at": utc(p.updated_at),
        }

    def review_body(self, review: Review) -> dict[str, Any]:
        return {
            "id": review.id,
            "product": review.product_id,
            "author": review.author_id,
            "author_name": self.users[review.author_id].name,
            "rating": review.rating,
            "title": review.title,
            "body": review.body,
            "created_at": utc(review.created_at),
        }

    def category_body(self, category: Category) -> dict[str, Any]:
        return {
            "id": category.id,
            "slug": category.slug,
            "name": category.name,
            "created_at": utc(category.created_at),
        }


async def ordered_ids(session: Any, columns: Sequence[Any], descending: bool) -> list[int]:
    order = [c.desc() if descending else c.asc() for c in columns]
    return list((await session.scalars(select(Product.id).order_by(*order))).all())


async def load_catalog(gateway: Gateway) -> Catalog:
    async with gateway.app.state.db.read() as session:
        products = {p.id: p for p in (await session.scalars(select(Product))).all()}
        categories = list(
            (await session.scalars(select(Category).order_by(Category.name, Category.id))).all()
        )
        reviews = list(
            (
                await session.scalars(
                    select(Review).order_by(Review.created_at.desc(), Review.id.desc())
                )
            ).all()
        )
        users = {u.id: u for u in (await session.scalars(select(User))).all()}
        orders = {}
        for sort in SORTS:
            columns = SORT_COLUMNS[sort.lstrip("-")]
            orders[sort] = await ordered_ids(session, columns, sort.startswith("-"))
    return Catalog(products, categories, reviews, users, orders)


def utc(value: datetime) -> datetime:
    """A stored naive-UTC timestamp as an aware one."""
    return value.replace(tzinfo=UTC)
