"""Review writes: one per author and product, own only, and ratings that follow at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from data.models import Review
from tests import writekit as w
from tests.orderkit import Recorder, db_of, new_product
from tests.principals import World

INTERFACES = w.INTERFACES


async def average(world: World, product_id: int) -> tuple[float | None, int]:
    body = await world.gateway.graphql(
        f'{{ product(id: "{product_id}") {{ averageRating reviews {{ totalCount }} }} }}'
    )
    product = body["data"]["product"]
    return product["averageRating"], product["reviews"]["totalCount"]


async def review_count(world: World, product_id: int) -> int:
    async with db_of(world).read() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Review).where(Review.product_id == product_id)
            )
        )


@pytest.mark.parametrize("interface", INTERFACES)
async def test_review_lifecycle(world: World, interface: str) -> None:
    product = await new_product(world)
    recorder = Recorder(db_of(world))
    outcome, review = await w.create_review(
        world, interface, "customer", product, rating=4, title="  Good  ", body="Works"
    )
    assert outcome == "ok", review
    assert (review["rating"], review["title"], review["product"], review["author"]) == (
        4,
        "Good",
        product,
        world.user_ids["customer"],
    )
    assert f"product:{product}" in recorder.tags()
    assert await average(world, product) == (4.0, 1)
    listed = await world.gateway.client.get(f"/api/v1/products/{product}/reviews")
    assert [r["id"] for r in listed.json()["data"]] == [review["id"]]

    assert (await w.create_review(world, interface, "customer", product))[0] == "conflict"
    outcome, _ = await w.create_review(world, interface, "other_customer", product, rating=2)
    assert outcome == "ok"
    assert await average(world, product) == (3.0, 2)

    assert (await w.update_review(world, interface, "other_customer", review["id"], rating=1))[
        0
    ] == "not_found"
    assert (await w.update_review(world, interface, "staff", review["id"], rating=1))[
        0
    ] == "not_found"
    outcome, updated = await w.update_review(
        world, interface, "customer", review["id"], rating=5, body="Even better"
    )
    assert outcome == "ok"
    assert (updated["rating"], updated["title"], updated["body"]) == (5, "Good", "Even better")
    assert await average(world, product) == (3.5, 2)

    assert (await w.delete_review(world, interface, "other_customer", review["id"]))[
        0
    ] == "not_found"
    assert (await w.delete_review(world, interface, "customer", review["id"]))[0] == "ok"
    assert await average(world, product) == (2.0, 1)
    assert (await w.delete_review(world, interface, "customer", review["id"]))[0] == "not_found"


@pytest.mark.parametrize("interface", INTERFACES)
async def test_staff_delete_any_review_and_keys_write_none(world: World, interface: str) -> None:
    product = await new_product(world)
    outcome, review = await w.create_review(world, interface, "other_customer", product)
    assert outcome == "ok"
    for principal in ("key_catalog_write", "key_catalog_read", "key_orders_read"):
        assert (await w.create_review(world, interface, principal, product))[0] == "forbidden"
        assert (await w.delete_review(world, interface, principal, review["id"]))[0] == (
            "forbidden"
        )
    assert (await w.create_review(world, interface, "anonymous", product))[0] == ("unauthenticated")
    assert (await w.delete_review(world, interface, "admin", review["id"]))[0] == "ok"
    assert await review_count(world, product) == 0


@pytest.mark.parametrize("interface", INTERFACES)
async def test_bad_reviews_are_refused(world: World, interface: str) -> None:
    product = await new_product(world)
    hidden = await new_product(world, active=False)
    for rating in (0, 6, -1):
        outcome, locs = await w.create_review(world, interface, "customer", product, rating=rating)
        assert outcome == "invalid"
        assert locs == [["input" if interface == "graphql" else "body", "rating"]]
    assert (await w.create_review(world, interface, "customer", product, title=""))[0] == (
        "invalid"
    )
    assert (await w.create_review(world, interface, "customer", product, title="x" * 201))[
        0
    ] == "invalid"
    assert (await w.create_review(world, interface, "customer", hidden))[0] == "not_found"
    assert (await w.create_review(world, interface, "customer", 999_999))[0] == "not_found"
    assert await review_count(world, product) == 0


async def test_racing_reviews_of_one_author_give_one(world: World) -> None:
    product = await new_product(world)
    results = await asyncio.gather(
        *(w.create_review(world, interface, "customer", product) for interface in INTERFACES * 2)
    )
    assert sorted(outcome for outcome, _ in results) == ["conflict"] * 5 + ["ok"]
    assert await review_count(world, product) == 1
