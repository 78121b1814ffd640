"""Per-request dataloaders, built by ``build_loaders(db, actor)``.

Every batch opens its own read session (sibling fields resolve concurrently), applies
the same visibility rules as the services (it calls them), and answers in key order.
Connection loaders take ``(parent_id, args)`` keys and run one statement per distinct
``args``, so a nested connection costs one statement however many parents it has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from aiodataloader import DataLoader
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.db import Database
from data.models import Category, Order, OrderItem, Product, Review, User
from data.pagination import Page, PageRequest
from data.services import categories, orders, products, reviews, users

K = TypeVar("K", bound=Hashable)
A = TypeVar("A", bound=Hashable)
V = TypeVar("V")


def _loader(
    db: Database,
    actor: Actor,
    fetch: Callable[[AsyncSession, Actor, Sequence[K]], Awaitable[Sequence[V]]],
) -> DataLoader[K, V]:
    async def batch(keys: list[K]) -> list[V]:
        async with db.read() as session:
            return list(await fetch(session, actor, keys))

    return DataLoader(batch)


def _grouped_loader(
    db: Database,
    actor: Actor,
    fetch: Callable[[AsyncSession, Actor, Sequence[K], A], Awaitable[Sequence[V]]],
) -> DataLoader[tuple[K, A], V]:
    """Keys are ``(parent_id, args)``: one fetch per distinct ``args``."""

    async def batch(keys: list[tuple[K, A]]) -> list[V]:
        by_args: dict[A, list[K]] = defaultdict(list)
        for parent_id, args in keys:
            if parent_id not in by_args[args]:
                by_args[args].append(parent_id)
        results: dict[tuple[K, A], V] = {}
        async with db.read() as session:
            for args, parent_ids in by_args.items():
                values = await fetch(session, actor, parent_ids, args)
                results.update({(p, args): v for p, v in zip(parent_ids, values, strict=True)})
        return [results[key] for key in keys]

    return DataLoader(batch)


@dataclass(frozen=True)
class ProductPageArgs:
    where: products.ProductFilter
    sort: str
    page: PageRequest


OrderPageArgs = tuple[PageRequest, str | None]


@dataclass(frozen=True)
class Loaders:
    category: DataLoader[int, Category | None]
    product: DataLoader[int, Product | None]
    user: DataLoader[int, User | None]
    review: DataLoader[int, Review | None]
    review_stats: DataLoader[int, tuple[int, float | None]]
    product_reviews: DataLoader[tuple[int, PageRequest], Page[Review]]
    category_products: DataLoader[tuple[int, ProductPageArgs], Page[Product]]
    category_product_count: DataLoader[tuple[int, products.ProductFilter], int]
    visible_user: DataLoader[int, User | None]
    order: DataLoader[int, Order | None]
    order_items: DataLoader[int, list[OrderItem]]
    customer_orders: DataLoader[tuple[int, OrderPageArgs], Page[Order]]
    author_reviews: DataLoader[tuple[int, PageRequest], Page[Review]]
    customer_order_count: DataLoader[tuple[int, str | None], int]
    author_review_count: DataLoader[int, int]


def build_loaders(db: Database, actor: Actor) -> Loaders:
    """The loaders for one request, bound to its actor."""

    async def review_pages(
        session: AsyncSession, actor: Actor, ids: Sequence[int], page: PageRequest
    ) -> list[Page[Review]]:
        return await reviews.load_product_review_pages(session, actor, ids, page=page)

    async def product_pages(
        session: AsyncSession, actor: Actor, ids: Sequence[int], args: ProductPageArgs
    ) -> list[Page[Product]]:
        return await products.load_category_product_pages(
            session, actor, ids, where=args.where, sort=args.sort, page=args.page
        )

    async def product_counts(
        session: AsyncSession, actor: Actor, ids: Sequence[int], where: products.ProductFilter
    ) -> list[int]:
        return await products.count_category_products(session, actor, ids, where=where)

    async def author_review_pages(
        session: AsyncSession, actor: Actor, ids: Sequence[int], page: PageRequest
    ) -> list[Page[Review]]:
        return await reviews.load_author_review_pages(session, actor, ids, page=page)

    async def customer_order_pages(
        session: AsyncSession,
        actor: Actor,
        ids: Sequence[int],
        args: OrderPageArgs,
    ) -> list[Page[Order]]:
        page, status = args
        return await orders.load_customer_order_pages(session, actor, ids, page=page, status=status)

    async def customer_order_counts(
        session: AsyncSession, actor: Actor, ids: Sequence[int], status: str | None
    ) -> list[int]:
        return await orders.count_customer_orders(session, actor, ids, status=status)

    async def author_review_counts(
        session: AsyncSession, actor: Actor, ids: Sequence[int]
    ) -> list[int]:
        return await reviews.count_author_reviews(session, actor, ids)

    return Loaders(
        category=_loader(db, actor, categories.load_categories),
        product=_loader(db, actor, products.load_products),
        user=_loader(db, actor, users.load_users),
        review=_loader(db, actor, reviews.load_reviews),
        review_stats=_loader(db, actor, reviews.load_review_stats),
        product_reviews=_grouped_loader(db, actor, review_pages),
        category_products=_grouped_loader(db, actor, product_pages),
        category_product_count=_grouped_loader(db, actor, product_counts),
        visible_user=_loader(db, actor, users.load_visible_users),
        order=_loader(db, actor, orders.load_orders),
        order_items=_loader(db, actor, orders.load_order_items),
        customer_orders=_grouped_loader(db, actor, customer_order_pages),
        author_reviews=_grouped_loader(db, actor, author_review_pages),
        customer_order_count=_grouped_loader(db, actor, customer_order_counts),
        author_review_count=_loader(db, actor, author_review_counts),
    )
