"""Products: filtered, sorted, keyset-paginated reads under the actor's visibility."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.batching import in_key_order
from data.errors import FieldError, Invalid, NotFound
from data.inputs import MAX_INT, storable_ids, storable_int, storable_text
from data.models import Category, Product, ProductCount
from data.pagination import (
    Page,
    PageRequest,
    paginate,
    paginate_per_parent,
    parse_sort,
    sort_set,
)
from data.policy import product_visible

PRODUCT_SORTS = sort_set(
    created_at=(Product.created_at, Product.id),
    price=(Product.price_cents, Product.id),
    name=(Product.name, Product.id),
)
DEFAULT_PRODUCT_SORT = "-created_at"
MAX_QUERY_LENGTH = 200


@dataclass(frozen=True)
class ProductFilter:
    """The contract's product filters; ``None`` means "any"."""

    category: str | None = None
    q: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    in_stock: bool | None = None

    @property
    def counted_by_group(self) -> bool:
        """Only visibility, category and ``in_stock``: ``product_counts`` has the total.

        ``q`` and the prices cut across the groups, so their totals count the rows."""
        return not self.q and self.min_price is None and self.max_price is None

    def validate(self) -> ProductFilter:
        errors = [
            FieldError((name,), f"must be between 0 and {MAX_INT}")
            for name, value in (("min_price", self.min_price), ("max_price", self.max_price))
            if value is not None and not (storable_int(value) and value >= 0)
        ]
        if self.q is not None and len(self.q) > MAX_QUERY_LENGTH:
            errors.append(FieldError(("q",), f"at most {MAX_QUERY_LENGTH} characters"))
        errors.extend(
            FieldError((name,), "must be text without NUL characters")
            for name, text in (("category", self.category), ("q", self.q))
            if text is not None and not storable_text(text)
        )
        if errors:
            raise Invalid("Invalid product filter.", errors=errors)
        return self


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _visible_products(actor: Actor, where: ProductFilter) -> Select[Product]:
    stmt = select(Product).where(product_visible(actor))
    if where.category is not None:
        stmt = stmt.where(
            Product.category_id.in_(select(Category.id).where(Category.slug == where.category))
        )
    if where.q:
        stmt = stmt.where(Product.name.ilike(f"%{_escape_like(where.q)}%", escape="\\"))
    if where.min_price is not None:
        stmt = stmt.where(Product.price_cents >= where.min_price)
    if where.max_price is not None:
        stmt = stmt.where(Product.price_cents <= where.max_price)
    if where.in_stock is not None:
        stmt = stmt.where(Product.stock > 0 if where.in_stock else Product.stock == 0)
    return stmt


async def list_products(
    session: AsyncSession,
    actor: Actor,
    *,
    where: ProductFilter | None = None,
    sort: str = DEFAULT_PRODUCT_SORT,
    page: PageRequest,
) -> Page[Product]:
    """A page of the products this actor may see, filtered and sorted."""
    where = (where or ProductFilter()).validate()
    return await paginate(
        session,
        _visible_products(actor, where),
        scope="products",
        sort=parse_sort(PRODUCT_SORTS, sort),
        request=page,
    )


def _group_total(actor: Actor, where: ProductFilter) -> Select[int]:
    """The SUM over ``product_counts`` that equals the COUNT over ``_visible_products``
    for a filter ``counted_by_group``, without a category of its own (add that)."""
    stmt = select(func.coalesce(func.sum(ProductCount.total), 0)).where(
        product_visible(actor, ProductCount)
    )
    if where.category is not None:
        stmt = stmt.where(
            ProductCount.category_id.in_(select(Category.id).where(Category.slug == where.category))
        )
    if where.in_stock is not None:
        stmt = stmt.where(ProductCount.in_stock == where.in_stock)
    return stmt


async def count_products(
    session: AsyncSession, actor: Actor, *, where: ProductFilter | None = None
) -> int:
    """How many products match, among those this actor may see."""
    where = (where or ProductFilter()).validate()
    if where.counted_by_group:
        return int(await session.scalar(_group_total(actor, where)) or 0)
    stmt = _visible_products(actor, where)
    return int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


async def find_product(
    session: AsyncSession, actor: Actor, *, id: int | None = None, sku: str | None = None
) -> Product:
    """The product with this id or sku, if this actor may see it; else ``NotFound``."""
    if (id is None) == (sku is None):
        raise Invalid("Give exactly one of id and sku.")
    if not (storable_int(id) if id is not None else storable_text(sku)):
        raise NotFound("No such product.")  # no row can have it
    stmt = select(Product).where(product_visible(actor))
    stmt = stmt.where(Product.id == id) if id is not None else stmt.where(Product.sku == sku)
    product = await session.scalar(stmt)
    if product is None:
        raise NotFound("No such product.")
    return product


async def load_products(
    session: AsyncSession, actor: Actor, ids: Sequence[int]
) -> list[Product | None]:
    """Products by id in key order; ``None`` for those that do not exist for this actor."""
    stmt = select(Product).where(product_visible(actor), Product.id.in_(storable_ids(ids)))
    return in_key_order((await session.scalars(stmt)).all(), ids)


async def load_category_product_pages(
    session: AsyncSession,
    actor: Actor,
    category_ids: Sequence[int],
    *,
    where: ProductFilter | None = None,
    sort: str = DEFAULT_PRODUCT_SORT,
    page: PageRequest,
) -> list[Page[Product]]:
    """A page of products for each category, in one statement, in key order."""
    where = (where or ProductFilter()).validate()
    pages = await paginate_per_parent(
        session,
        _visible_products(actor, where),
        model=Product,
        parent=Product.category_id,
        parent_ids=category_ids,
        scope="products",
        sort=parse_sort(PRODUCT_SORTS, sort),
        request=page,
    )
    return [pages[i] for i in category_ids]


async def count_category_products(
    session: AsyncSession,
    actor: Actor,
    category_ids: Sequence[int],
    *,
    where: ProductFilter | None = None,
) -> list[int]:
    """How many visible, matching products each category has, in key order."""
    where = (where or ProductFilter()).validate()
    if where.counted_by_group:
        total = _group_total(actor, where)
        stmt = (
            total.add_columns(ProductCount.category_id)
            .where(ProductCount.category_id.in_(category_ids))
            .group_by(ProductCount.category_id)
        )
        counts = {category: n for n, category in (await session.execute(stmt)).all()}
    else:
        inner = (
            _visible_products(actor, where).where(Product.category_id.in_(category_ids)).subquery()
        )
        stmt = select(inner.c.category_id, func.count()).group_by(inner.c.category_id)
        counts = dict((await session.execute(stmt)).all())
    return [int(counts.get(i, 0)) for i in category_ids]
