"""Reviews and ratings of the products an actor may see."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.batching import in_key_order
from data.inputs import storable_ids
from data.models import Product, Review
from data.pagination import Page, PageRequest, paginate, paginate_per_parent, parse_sort, sort_set
from data.policy import product_visible
from data.services.products import find_product

REVIEW_SORTS = sort_set(created_at=(Review.created_at, Review.id))
DEFAULT_REVIEW_SORT = "-created_at"


def _visible_reviews(actor: Actor) -> Select[Review]:
    return select(Review).where(
        Review.product_id.in_(select(Product.id).where(product_visible(actor)))
    )


async def list_product_reviews(
    session: AsyncSession,
    actor: Actor,
    *,
    product_id: int,
    page: PageRequest,
    sort: str = DEFAULT_REVIEW_SORT,
) -> Page[Review]:
    """A page of a product's reviews, newest first; ``NotFound`` if the product is hidden."""
    await find_product(session, actor, id=product_id)
    return await paginate(
        session,
        select(Review).where(Review.product_id == product_id),
        scope="reviews",
        sort=parse_sort(REVIEW_SORTS, sort),
        request=page,
    )


async def load_product_review_pages(
    session: AsyncSession,
    actor: Actor,
    product_ids: Sequence[int],
    *,
    page: PageRequest,
    sort: str = DEFAULT_REVIEW_SORT,
) -> list[Page[Review]]:
    """A page of reviews for each product, in one statement, in key order."""
    pages = await paginate_per_parent(
        session,
        _visible_reviews(actor),
        model=Review,
        parent=Review.product_id,
        parent_ids=product_ids,
        scope="reviews",
        sort=parse_sort(REVIEW_SORTS, sort),
        request=page,
    )
    return [pages[i] for i in product_ids]


async def load_review_stats(
    session: AsyncSession, actor: Actor, product_ids: Sequence[int]
) -> list[tuple[int, float | None]]:
    """``(count, average rating)`` for each product, in key order."""
    stmt = (
        _visible_reviews(actor)
        .where(Review.product_id.in_(product_ids))
        .with_only_columns(Review.product_id, func.count(), func.avg(Review.rating))
        .group_by(Review.product_id)
    )
    stats = {pid: (int(n), float(avg)) for pid, n, avg in (await session.execute(stmt)).all()}
    return [stats.get(i, (0, None)) for i in product_ids]


async def find_average_rating(
    session: AsyncSession, actor: Actor, *, product_id: int
) -> float | None:
    """A product's average rating (``None`` without reviews); ``NotFound`` if hidden."""
    await find_product(session, actor, id=product_id)
    [(_, average)] = await load_review_stats(session, actor, [product_id])
    return average


async def load_reviews(
    session: AsyncSession, actor: Actor, ids: Sequence[int]
) -> list[Review | None]:
    """Reviews by id in key order; ``None`` where the review or its product is hidden."""
    stmt = _visible_reviews(actor).where(Review.id.in_(storable_ids(ids)))
    return in_key_order((await session.scalars(stmt)).all(), ids)


async def load_author_review_pages(
    session: AsyncSession,
    actor: Actor,
    author_ids: Sequence[int],
    *,
    page: PageRequest,
    sort: str = DEFAULT_REVIEW_SORT,
) -> list[Page[Review]]:
    """A page of each author's reviews (of products this actor may see), in one statement."""
    pages = await paginate_per_parent(
        session,
        _visible_reviews(actor),
        model=Review,
        parent=Review.author_id,
        parent_ids=author_ids,
        scope="reviews",
        sort=parse_sort(REVIEW_SORTS, sort),
        request=page,
    )
    return [pages[i] for i in author_ids]


async def count_author_reviews(
    session: AsyncSession, actor: Actor, author_ids: Sequence[int]
) -> list[int]:
    """How many reviews (of products this actor may see) each author wrote, in key order."""
    inner = _visible_reviews(actor).where(Review.author_id.in_(author_ids)).subquery()
    stmt = select(inner.c.author_id, func.count()).group_by(inner.c.author_id)
    counts: dict[int, int] = dict((await session.execute(stmt)).all())
    return [int(counts.get(i, 0)) for i in author_ids]
