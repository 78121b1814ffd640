"""Writing reviews: one per author and product; authors edit their own, staff delete any."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.changes import product_changed
from data.errors import Conflict, NotFound
from data.inputs import storable_int
from data.models import Product, Review, utcnow
from data.policy import product_visible
from data.services.catalog_writes import check_fields, only_fields
from data.services.guards import require_user
from data.services.products import find_product

REVIEW_FIELDS = {"rating", "title", "body"}


async def create_review(
    session: AsyncSession,
    actor: Actor,
    *,
    product_id: int,
    rating: int,
    title: str,
    body: str = "",
) -> Review:
    """Your review of a product you may see; a second one is a ``Conflict``."""
    author_id = require_user(actor)
    check_fields({"rating": rating, "title": title, "body": body})
    product = await find_product(session, actor, id=product_id)
    review = Review(
        product_id=product.id,
        author_id=author_id,
        rating=rating,
        title=title.strip(),
        body=body,
        created_at=utcnow(),
    )
    session.add(review)
    try:
        await session.flush()
    except IntegrityError:  # the unique (author, product) constraint: also under a race
        raise Conflict(
            "You have already reviewed this product: edit that review instead."
        ) from None
    product_changed(session, product.id)
    return review


async def _review(
    session: AsyncSession, actor: Actor, review_id: int, *, staff_may: bool
) -> Review:
    """A review this actor may change: its own (or any, for staff when ``staff_may``);
    anyone else's does not exist for it."""
    review = None
    if storable_int(review_id):
        stmt = select(Review).where(
            Review.id == review_id,
            Review.product_id.in_(select(Product.id).where(product_visible(actor))),
        )
        if not (staff_may and actor.is_staff):
            stmt = stmt.where(Review.author_id == actor.user_id)
        review = await session.scalar(stmt)
    if review is None:
        raise NotFound("No such review.")
    return review


async def update_review(
    session: AsyncSession, actor: Actor, *, review_id: int, **changes: Any
) -> Review:
    """Edits your own review's rating, title or body."""
    require_user(actor)
    only_fields(changes, REVIEW_FIELDS)
    check_fields(changes)
    review = await _review(session, actor, review_id, staff_may=False)
    for name, value in changes.items():
        setattr(review, name, value.strip() if name == "title" else value)
    await session.flush()
    product_changed(session, review.product_id)
    return review


async def delete_review(session: AsyncSession, actor: Actor, *, review_id: int) -> Review:
    """Deletes your own review (staff and admins: any review)."""
    require_user(actor)
    review = await _review(session, actor, review_id, staff_may=True)
    await session.delete(review)
    await session.flush()
    product_changed(session, review.product_id)
    return review
