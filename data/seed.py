"""Deterministic demo and scale data: the same arguments always give the same rows."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.models import Category, Order, OrderItem, Product, Review, User
from data.passwords import UNUSABLE, hash_password

EPOCH = datetime(2026, 1, 1)
DEMO_PASSWORD = "demo-password"
DEMO_USERS = (
    ("admin@example.com", "Ada Admin", "admin"),
    ("staff@example.com", "Sam Staff", "staff"),
    ("customer@example.com", "Cleo Customer", "customer"),
)
ADJECTIVES = (
    "Classic",
    "Compact",
    "Deluxe",
    "Eco",
    "Nimble",
    "Rugged",
    "Silent",
    "Smart",
    "Sturdy",
    "Vintage",
    "Wireless",
    "Zesty",
)
NOUNS = (
    "Backpack",
    "Blender",
    "Camera",
    "Chair",
    "Headphones",
    "Kettle",
    "Lamp",
    "Mug",
    "Notebook",
    "Speaker",
    "Teapot",
    "Watch",
)
CATEGORY_NAMES = (
    "Books",
    "Electronics",
    "Garden",
    "Home",
    "Kitchen",
    "Outdoor",
    "Sports",
    "Toys",
    "Music",
    "Office",
    "Pets",
    "Travel",
)
# The documentation's order examples name products 1 and 2: with ``demo`` the first few
# products are active and well stocked, so those examples work on a fresh demo database.
DEMO_STOCKED_PRODUCTS = 3
DEMO_STOCK = 100
REVIEW_TITLES = (
    "Love it",
    "Does the job",
    "Not bad",
    "Could be better",
    "Excellent",
    "Disappointing",
    "Great value",
)


async def is_empty(session: AsyncSession) -> bool:
    return not await session.scalar(select(func.count()).select_from(Product))


async def seed(
    session: AsyncSession, *, scale: int = 100, demo: bool = False, max_reviews: int = 5
) -> dict[str, int]:
    """Insert about ``scale`` products with categories, users, reviews and orders.

    Each product gets 0 to ``max_reviews`` reviews (about ``max_reviews / 2`` on average).
    """
    rng = random.Random(scale)
    n_categories = max(3, min(len(CATEGORY_NAMES) * 10, scale // 20))
    n_users = max(5, scale // 4)
    demo_hash = hash_password(DEMO_PASSWORD) if demo else UNUSABLE

    users = []
    for i in range(n_users):
        email, name, role = (
            DEMO_USERS[i]
            if i < len(DEMO_USERS)
            else (f"user{i}@example.com", f"User {i}", "customer")
        )
        users.append(
            {
                "email": email,
                "name": name,
                "role": role,
                "is_active": True,
                "password_hash": demo_hash if i < len(DEMO_USERS) else UNUSABLE,
                "created_at": EPOCH + timedelta(hours=i),
            }
        )
    user_ids = list((await session.scalars(insert(User).returning(User.id), users)).all())

    categories = []
    for i in range(n_categories):
        base = CATEGORY_NAMES[i % len(CATEGORY_NAMES)]
        suffix = "" if i < len(CATEGORY_NAMES) else f" {i // len(CATEGORY_NAMES) + 1}"
        categories.append(
            {
                "slug": (base + suffix).lower().replace(" ", "-"),
                "name": base + suffix,
                "created_at": EPOCH + timedelta(minutes=i),
            }
        )
    category_ids = list(
        (await session.scalars(insert(Category).returning(Category.id), categories)).all()
    )

    products = []
    for i in range(scale):
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {i + 1}"
        created = EPOCH + timedelta(minutes=10 * i, seconds=rng.randrange(60))
        product = {
            "sku": f"SKU-{i + 1:06d}",
            "name": name,
            "description": f"The {name.lower()}, made to last.",
            "price_cents": rng.randrange(199, 49_999),
            "stock": rng.choice((0, 3, 10, 25, 100)),
            "category_id": category_ids[i % len(category_ids)],
            "is_active": rng.random() > 0.05,
            "created_at": created,
            "updated_at": created,
        }
        if demo and i < DEMO_STOCKED_PRODUCTS:  # after the draws: every other row stays as it was
            product.update(stock=DEMO_STOCK, is_active=True)
        products.append(product)
    product_rows = (
        await session.execute(insert(Product).returning(Product.id, Product.price_cents), products)
    ).all()

    reviews = []
    for pid, _price in product_rows:
        authors = rng.sample(user_ids, k=min(len(user_ids), rng.randrange(0, max_reviews + 1)))
        for j, author in enumerate(authors):
            reviews.append(
                {
                    "product_id": pid,
                    "author_id": author,
                    "rating": rng.randint(1, 5),
                    "title": rng.choice(REVIEW_TITLES),
                    "body": "Honest words about it.",
                    "created_at": EPOCH + timedelta(days=30, minutes=pid * 7 + j),
                }
            )
    if reviews:
        await session.execute(insert(Review), reviews)

    n_orders = 0
    customers = user_ids[2:]
    statuses = ("pending", "paid", "shipped", "delivered", "cancelled")
    for i in range(max(2, scale // 2)):
        picked = rng.sample(product_rows, k=min(len(product_rows), rng.randint(1, 3)))
        items = [(pid, rng.randint(1, 3), price) for pid, price in picked]
        created = EPOCH + timedelta(days=40, minutes=i * 13)
        order_id = await session.scalar(
            insert(Order)
            .returning(Order.id)
            .values(
                customer_id=customers[i % len(customers)],
                status=rng.choice(statuses),
                total_cents=sum(q * p for _, q, p in items),
                created_at=created,
                updated_at=created,
            )
        )
        await session.execute(
            insert(OrderItem),
            [
                {"order_id": order_id, "product_id": pid, "quantity": q, "unit_price_cents": p}
                for pid, q, p in items
            ],
        )
        n_orders += 1
    await session.flush()
    return {
        "users": len(user_ids),
        "categories": len(category_ids),
        "products": len(product_rows),
        "reviews": len(reviews),
        "orders": n_orders,
    }
