"""Categories: public reads."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.batching import in_key_order
from data.errors import NotFound
from data.inputs import storable_ids, storable_text
from data.models import Category
from data.pagination import Page, PageRequest, paginate, parse_sort, sort_set

CATEGORY_SORTS = sort_set(name=(Category.name, Category.id))
DEFAULT_CATEGORY_SORT = "name"


async def list_categories(
    session: AsyncSession, actor: Actor, *, page: PageRequest, sort: str = DEFAULT_CATEGORY_SORT
) -> Page[Category]:
    """A page of categories, by name."""
    return await paginate(
        session,
        select(Category),
        scope="categories",
        sort=parse_sort(CATEGORY_SORTS, sort),
        request=page,
    )


async def count_categories(session: AsyncSession, actor: Actor) -> int:
    """How many categories there are."""
    return int(await session.scalar(select(func.count()).select_from(Category)) or 0)


async def find_category(session: AsyncSession, actor: Actor, *, slug: str) -> Category:
    """The category with this slug, or ``NotFound``."""
    category = None
    if storable_text(slug):  # else no row can have it
        category = await session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise NotFound(f"No category with slug {slug!r}.")
    return category


async def load_categories(
    session: AsyncSession, actor: Actor, ids: Sequence[int]
) -> list[Category | None]:
    """Categories by id, in key order (``None`` where there is none)."""
    rows = (await session.scalars(select(Category).where(Category.id.in_(storable_ids(ids))))).all()
    return in_key_order(rows, ids)
