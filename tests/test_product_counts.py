"""``product_counts``: the triggers keep it equal to a GROUP BY over products whatever
writes them, and list totals read it, in the resolver path and the compiled statement,
with the answers a COUNT over products gives."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from data.actor import user_actor
from data.db import Database
from data.errors import DomainError
from data.migrate import upgrade_async
from data.models import Category, Product, User
from data.seed import DEMO_PASSWORD, seed
from data.services import catalog_writes, order_writes
from gateway.compiled.planner.sql import MARK
from tests.conftest import (
    Gateway,
    PostgresDatabases,
    make_settings,
    new_database_url,
    running_gateway,
)

GROUPS = (
    "SELECT category_id, is_active, stock > 0, count(*) FROM products "
    "GROUP BY category_id, is_active, stock > 0"
)
COUNTED = "SELECT category_id, is_active, in_stock, total FROM product_counts WHERE total <> 0"

TOTALS = """query($f: ProductFilterInput, $g: ProductFilterInput) {
  products(first: 1, filter: $f) { totalCount }
  categories(first: 100) { edges { node { slug products(first: 1, filter: $g) {
    totalCount } } } }
}"""


@dataclass
class World:
    backend: str
    url: str
    db: Database
    staff: Any
    customer: Any
    slugs: list[str]


@pytest.fixture
async def world(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> AsyncIterator[World]:
    async with make_world(backend, tmp_path, pg_databases) as made:
        yield made


@asynccontextmanager
async def make_world(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> AsyncIterator[World]:
    """A migrated database (the production way) with the demo seed."""
    url = await new_database_url(backend, tmp_path, pg_databases)
    await upgrade_async(url)
    db = Database.from_url(url)
    try:
        async with db.write() as session:
            await seed(session, scale=60, demo=True)
        async with db.read() as session:
            users = dict((await session.execute(select(User.email, User.id))).all())
            slugs = list(await session.scalars(select(Category.slug).order_by(Category.id)))
        yield World(
            backend,
            url,
            db,
            user_actor(users["staff@example.com"], "staff"),
            user_actor(users["customer@example.com"], "customer"),
            slugs,
        )
    finally:
        await db.dispose()


def as_ints(rows: Any) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in row) for row in rows}


async def assert_counts_match(db: Database) -> set[tuple[int, ...]]:
    async with db.read() as session:
        groups = as_ints((await session.execute(text(GROUPS))).all())
        counted = as_ints((await session.execute(text(COUNTED))).all())
    assert counted == groups
    return groups


async def random_write(world: World, rng: random.Random, orders: list[int]) -> str:
    """One write through the services, in its own transaction: what it was."""
    staff, customer = world.staff, world.customer
    async with world.db.write() as session:
        products = (
            await session.execute(
                select(Product.id, Product.stock, Product.is_active, Product.category_id).order_by(
                    Product.id
                )
            )
        ).all()
        categories = list(await session.scalars(select(Category.id)))
        selling = [p for p in products if p.is_active and p.stock > 0]
        kind = rng.choice(
            ("last", "some", "cancel", "create", "stock", "deactivate", "move", "delete")
        )
        if kind in ("last", "some") and selling:
            p = rng.choice(selling)
            quantity = p.stock if kind == "last" else rng.randint(1, p.stock)
            order, _ = await order_writes.place_order(
                session, customer, lines=[order_writes.OrderLine(p.id, quantity)]
            )
            orders.append(order.id)
        elif kind == "cancel" and orders:
            order_id = orders.pop(rng.randrange(len(orders)))
            await order_writes.cancel_order(session, customer, order_id=order_id)
        elif kind == "create":
            await catalog_writes.create_product(
                session,
                staff,
                sku=f"NEW-{rng.randrange(10**9)}",
                name="New thing",
                price_cents=rng.randrange(100, 10_000),
                category_id=rng.choice(categories),
                stock=rng.choice((0, 0, 1, 5)),
                is_active=rng.random() > 0.3,
            )
        elif kind == "stock":
            await catalog_writes.update_product(
                session, staff, product_id=rng.choice(products).id, stock=rng.choice((0, 1, 7))
            )
        elif kind == "deactivate":
            p = rng.choice(products)
            await catalog_writes.update_product(
                session, staff, product_id=p.id, is_active=not p.is_active
            )
        elif kind == "move":
            await catalog_writes.update_product(
                session,
                staff,
                product_id=rng.choice(products).id,
                category_id=rng.choice(categories),
                stock=rng.choice((0, 3)),
            )
        elif kind == "delete":
            try:
                await catalog_writes.delete_product(
                    session, staff, product_id=rng.choice(products).id
                )
            except DomainError:  # ordered: refused, and nothing changed
                return "delete refused"
        else:
            return "nothing"
    return kind


async def test_counts_equal_a_group_by_after_random_writes(world: World) -> None:
    before = await assert_counts_match(world.db)  # the seed's bulk insert counted
    assert sum(n for *_, n in before) == 60
    rng = random.Random(f"counts-{world.backend}")
    orders: list[int] = []
    done = []
    for _ in range(80):
        done.append(await random_write(world, rng, orders))
        await assert_counts_match(world.db)
    # The sequence really did each kind of write (else the test proves less).
    assert {"last", "some", "cancel", "create", "stock", "deactivate", "move", "delete"} <= set(
        done
    ), done


async def expected_total(
    db: Database,
    *,
    staff: bool,
    category: str | None = None,
    in_stock: bool | None = None,
    q: str | None = None,
) -> int:
    where, params = [], {}
    if not staff:
        where.append("p.is_active = :yes")
        params["yes"] = True
    if category is not None:
        where.append("p.category_id = (SELECT id FROM categories WHERE slug = :slug)")
        params["slug"] = category
    if in_stock is not None:
        where.append("p.stock > 0" if in_stock else "p.stock = 0")
    if q is not None:
        where.append("lower(p.name) LIKE :q")
        params["q"] = f"%{q.lower()}%"
    sql = "SELECT count(*) FROM products p" + (" WHERE " + " AND ".join(where) if where else "")
    async with db.read() as session:
        return int(await session.scalar(text(sql), params) or 0)


async def staff_headers(gateway: Gateway) -> dict[str, str]:
    response = await gateway.client.post(
        "/api/v1/auth/token", data={"username": "staff@example.com", "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def graphql_filter(
    category: str | None, in_stock: bool | None, q: str | None = None
) -> dict[str, Any]:
    given = {"category": category, "inStock": in_stock, "q": q}
    return {k: v for k, v in given.items() if v is not None}


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_totals_equal_a_count_after_writes(
    world: World, tmp_path: Path, compiled: bool
) -> None:
    rng = random.Random(f"totals-{world.backend}-{compiled}")
    orders: list[int] = []
    for _ in range(40):
        await random_write(world, rng, orders)
    # A gateway started after the writes: nothing it answers was cached before them.
    settings = make_settings(world.url, tmp_path, compiled_reads=compiled)
    async with running_gateway(settings, world.backend) as gateway:
        staff = await staff_headers(gateway)
        cases = [
            (c, s, q)
            for c in (None, world.slugs[0], world.slugs[1])
            for s in (None, True, False)
            for q in (None,)
        ]
        cases += [(None, None, "lamp"), (world.slugs[0], True, "e")]  # still counted by scan
        for who, headers in (("anonymous", {}), ("staff", staff)):
            for category, in_stock, q in cases:
                f = graphql_filter(category, in_stock, q)
                g = graphql_filter(None, in_stock, q)
                body = await gateway.graphql(TOTALS, {"f": f, "g": g}, headers=headers)
                assert "errors" not in body, body
                data = body["data"]
                want = await expected_total(
                    world.db, staff=who == "staff", category=category, in_stock=in_stock, q=q
                )
                assert data["products"]["totalCount"] == want, (who, f)
                pages = {
                    e["node"]["slug"]: e["node"]["products"]["totalCount"]
                    for e in data["categories"]["edges"]
                }
                assert pages == {
                    slug: await expected_total(
                        world.db, staff=who == "staff", category=slug, in_stock=in_stock, q=q
                    )
                    for slug in world.slugs
                }, (who, g)


COUNT_ONLY = """query($f: ProductFilterInput) { products(first: 2, filter: $f) {
  totalCount edges { node { name } } } }"""


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "resolvers"])
async def test_the_total_reads_product_counts_not_products(
    world: World, tmp_path: Path, compiled: bool
) -> None:
    settings = make_settings(world.url, tmp_path, compiled_reads=compiled, cache_enabled=False)
    async with running_gateway(settings, world.backend) as gateway:
        for f, by_group in (
            ({}, True),
            ({"category": world.slugs[0], "inStock": True}, True),
            ({"q": "a"}, False),
            ({"minPrice": 1000}, False),
        ):
            with gateway.count_statements() as counter:
                body = await gateway.graphql(COUNT_ONLY, {"f": f})
            assert "errors" not in body, body
            sql = [s for s in counter.statements if "product" in s]
            on_compiled = compiled and world.backend == "postgresql"
            # Compiled: one statement, the page and the total together; else the page,
            # then the total.
            assert len(sql) == (1 if on_compiled else 2), sql
            assert [s.startswith(MARK) for s in sql] == [on_compiled] * len(sql), sql
            counts_rows = any("count(*)" in s.lower() for s in sql)
            reads_groups = any("product_counts" in s for s in sql)
            assert (reads_groups, counts_rows) == (by_group, not by_group), (f, sql)


async def test_concurrent_stock_changes_in_one_group_lose_no_update(
    tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    """PostgreSQL only: SQLite runs one writer at a time."""
    async with make_world("postgresql", tmp_path, pg_databases) as world:
        await two_transactions_sell_out_one_group(world)


async def two_transactions_sell_out_one_group(world: World) -> None:
    async with world.db.read() as session:
        group = (
            await session.execute(
                text(
                    "SELECT category_id FROM products WHERE is_active AND stock > 0 "
                    "GROUP BY category_id HAVING count(*) >= 2 ORDER BY category_id LIMIT 1"
                )
            )
        ).scalar()
        first, second = (
            await session.scalars(
                text(
                    "SELECT id FROM products WHERE is_active AND stock > 0 AND category_id = :c "
                    "ORDER BY id LIMIT 2"
                ),
                {"c": group},
            )
        ).all()
    engine = world.db.engine
    async with engine.connect() as a, engine.connect() as b:
        await a.begin()
        await b.begin()
        await a.execute(text("UPDATE products SET stock = 0 WHERE id = :id"), {"id": first})
        b_pid = await b.scalar(text("SELECT pg_backend_pid()"))
        blocked = asyncio.create_task(
            b.execute(text("UPDATE products SET stock = 0 WHERE id = :id"), {"id": second})
        )
        # Wait until b waits for a's lock on the group's counter (or has finished).
        async with engine.connect() as watcher:
            for _ in range(400):
                waiting = await watcher.scalar(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"),
                    {"p": b_pid},
                )
                if waiting or blocked.done():
                    break
                await asyncio.sleep(0.025)
        assert waiting, "the second transaction never waited for the first"
        await a.commit()
        await blocked
        await b.commit()
    groups = await assert_counts_match(world.db)
    assert (group, 1, 0) in {g[:3] for g in groups}
