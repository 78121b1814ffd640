"""The REST catalog bodies (v1 and v2) as one JSON-building SQL statement each.

The keys and their order are those of ``rest.representations.Representation``; the
differential test holds the two to the same bytes. Each function returns the body, or
``None`` where the service path must answer (not found: it renders the 404); anything
outside what is written here raises ``Unsupported``.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.errors import Invalid
from data.inputs import storable_int, storable_text
from data.money import CURRENCY
from data.pagination import PageRequest, parse_sort
from data.policy import can_read_stock
from data.services.categories import CATEGORY_SORTS, DEFAULT_CATEGORY_SORT
from data.services.products import PRODUCT_SORTS, ProductFilter
from data.services.reviews import DEFAULT_REVIEW_SORT, REVIEW_SORTS
from gateway.compiled.planner.graph import Builder, Where, obj
from gateway.compiled.planner.sql import (
    MARK,
    Unsupported,
    Window,
    cursor,
    iso,
    mapped,
    money_amount,
    plain,
    require,
)

PRODUCT_FIELDS = (
    "id",
    "sku",
    "name",
    "description",
    "price",
    "stock",
    "in_stock",
    "category",
    "is_active",
    "created_at",
    "updated_at",
)
CATEGORY_FIELDS = ("id", "slug", "name", "created_at")
REVIEW_FIELDS = ("id", "product", "author", "author_name", "rating", "title", "body", "created_at")


@dataclass(frozen=True)
class Shape:
    """How a version shows objects: money as an object (v2) or minor units (v1), and the
    sparse fieldset asked for (``None``: every field)."""

    money_objects: bool
    fields: frozenset[str] | None = None

    def narrow(self, pairs: list[tuple[str, str]], allowed: Iterable[str]) -> list[tuple[str, str]]:
        if self.fields is None:
            return pairs
        if self.fields - set(allowed):
            raise Unsupported("unknown fields")  # the service path answers Invalid
        return [(k, v) for k, v in pairs if k in self.fields]


def _product(b: Builder, shape: Shape, t: str) -> str:
    if shape.money_objects:
        money = [
            (
                "price",
                obj([("amount", money_amount(f"{t}.price_cents")), ("currency", f"'{CURRENCY}'")]),
            )
        ]
    else:
        money = [("price_cents", f"{t}.price_cents"), ("currency", f"'{CURRENCY}'")]
    pairs = [
        ("id", f"{t}.id"),
        ("sku", f"{t}.sku"),
        ("name", f"{t}.name"),
        ("description", f"{t}.description"),
        *money,
    ]
    if can_read_stock(b.actor):
        pairs.append(("stock", f"{t}.stock"))
    pairs += [
        ("in_stock", f"({t}.stock > 0)"),
        ("category", f"{t}.category_id"),
        ("is_active", f"{t}.is_active"),
        ("created_at", iso(f"{t}.created_at", aware=True)),
        ("updated_at", iso(f"{t}.updated_at", aware=True)),
    ]
    return obj(shape.narrow(pairs, PRODUCT_FIELDS))


def _category(b: Builder, shape: Shape, t: str) -> str:
    pairs = [
        ("id", f"{t}.id"),
        ("slug", f"{t}.slug"),
        ("name", f"{t}.name"),
        ("created_at", iso(f"{t}.created_at", aware=True)),
    ]
    return obj(shape.narrow(pairs, CATEGORY_FIELDS))


def _review(b: Builder, shape: Shape, t: str) -> str:
    u = b.st.alias("u")
    pairs = [
        ("id", f"{t}.id"),
        ("product", f"{t}.product_id"),
        ("author", f"{t}.author_id"),
        ("author_name", f"(SELECT {u}.name FROM users {u} WHERE {u}.id = {t}.author_id)"),
        ("rating", f"{t}.rating"),
        ("title", f"{t}.title"),
        ("body", f"{t}.body"),
        ("created_at", iso(f"{t}.created_at", aware=True)),
    ]
    return obj(shape.narrow(pairs, REVIEW_FIELDS))


def _envelope(b: Builder, table: str, window: Window, where: Where, render: Any) -> str:
    """``{"data": [...], "next_cursor": ...}`` as ``rest.responses.list_response`` builds it
    (forward pages only: REST has ``limit`` and ``cursor``)."""
    t, source = b.page(table, window, where)
    size = window.request.size
    page = f"FILTER (WHERE _rn <= {size})"
    last = f"(array_agg({cursor(window.scope, window.sort, t)} ORDER BY _rn DESC) {page})[1]"
    return (
        f"SELECT json_build_object('data', COALESCE(json_agg({render(t)} ORDER BY _rn) "
        f"{page}, '[]'::json), 'next_cursor', CASE WHEN count(*) > {size} THEN {last} END)"
        f"::text FROM {source} GROUP BY ()"
    )


def _forward(page: PageRequest) -> PageRequest:
    if page.backward:
        raise Unsupported("REST pages forward")
    return page


# The statements a compiled REST read ran, with their parameters' sources, when
# ``gateway.compiled.rest`` asks (the compiled lane keeps a read that ran exactly one as a plan).
STATEMENTS: ContextVar[list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] | None] = ContextVar(
    "compiled_rest_statements", default=None
)


async def _fetch(session: AsyncSession, b: Builder, sql: str) -> Any:
    params = tuple(b.st.params)
    ran = STATEMENTS.get()
    if ran is not None:
        ran.append((sql, params, tuple(b.st.sources)))
    connection = await session.connection()
    raw = (await connection.exec_driver_sql(MARK + sql, params)).scalar_one()
    return None if raw is None else orjson.loads(raw)


async def rest_products(
    session: AsyncSession,
    actor: Actor,
    shape: Shape,
    *,
    where: ProductFilter,
    sort: str,
    page: PageRequest,
) -> Any:
    """The body of ``GET /products``."""
    b = Builder(actor)
    try:
        parsed = parse_sort(PRODUCT_SORTS, sort)
    except Invalid as exc:
        raise Unsupported("sort") from exc
    window = Window.of("products", parsed, _forward(page))
    filters = b.product_filters(where)
    return await _fetch(
        session, b, _envelope(b, "products", window, filters, lambda t: _product(b, shape, t))
    )


def _stored_id(value: Any) -> Any:
    return mapped(value, require(storable_int))


async def rest_product(
    session: AsyncSession, actor: Actor, shape: Shape, *, product_id: Any
) -> Any:
    """The body of ``GET /products/{id}``, or ``None`` when it is not found (``product_id``
    may be bound, as every value a plan takes from its request)."""
    if not storable_int(plain(product_id)):
        return None
    b = Builder(actor)
    body = _product(b, shape, "t")
    match = b.st.param(_stored_id(product_id), "int")
    sql = f"SELECT ({body})::text FROM products t WHERE t.id = {match} AND {b.visible('t')}"
    return await _fetch(session, b, f"SELECT ({sql})")


async def rest_categories(
    session: AsyncSession, actor: Actor, shape: Shape, *, page: PageRequest
) -> Any:
    """The body of ``GET /categories``."""
    b = Builder(actor)
    window = Window.of("categories", CATEGORY_SORTS[DEFAULT_CATEGORY_SORT], _forward(page))
    return await _fetch(
        session,
        b,
        _envelope(b, "categories", window, lambda t: [], lambda t: _category(b, shape, t)),
    )


async def rest_category(session: AsyncSession, actor: Actor, shape: Shape, *, slug: Any) -> Any:
    """The body of ``GET /categories/{slug}``, or ``None`` when it is not found."""
    if not storable_text(plain(slug)):
        return None
    b = Builder(actor)
    body = _category(b, shape, "t")
    match = b.st.param(mapped(slug, require(storable_text)), "text")
    return await _fetch(
        session, b, f"SELECT (SELECT ({body})::text FROM categories t WHERE t.slug = {match})"
    )


async def rest_product_reviews(
    session: AsyncSession, actor: Actor, shape: Shape, *, product_id: Any, page: PageRequest
) -> Any:
    """The body of ``GET /products/{id}/reviews``, or ``None`` when the product is hidden."""
    if not storable_int(plain(product_id)):
        return None
    b = Builder(actor)
    window = Window.of("reviews", REVIEW_SORTS[DEFAULT_REVIEW_SORT], _forward(page))
    match = b.st.param(_stored_id(product_id), "int")
    listing = _envelope(
        b,
        "reviews",
        window,
        lambda t: [f"{t}.product_id = {match}"],
        lambda t: _review(b, shape, t),
    )
    sql = (
        f"SELECT CASE WHEN EXISTS (SELECT 1 FROM products p WHERE p.id = {match} "
        f"AND {b.visible('p')}) THEN ({listing}) END"
    )
    return await _fetch(session, b, sql)
