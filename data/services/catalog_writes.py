"""Catalog writes: categories and products (staff, admin and ``catalog:write`` keys).

Unique keys are left to the database's constraints, so two racing writers get one
success and one ``Conflict``, never an internal error.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.changes import category_changed, product_changed, stock_changed
from data.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from data.inputs import MAX_INT, storable_int, storable_text
from data.models import Category, OrderItem, Product, utcnow
from data.services.guards import require_principal

SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*", re.ASCII)
SKU = re.compile(r"[!-~]+", re.ASCII)  # printable ASCII without spaces
TEXT_LIMITS = {"name": 200, "description": 10_000, "title": 200, "body": 10_000}


def require_catalog_writer(actor: Actor) -> None:
    """Staff, admins and API keys with ``catalog:write``."""
    require_principal(actor)
    if not (actor.is_staff or actor.has_scope("catalog:write")):
        raise Forbidden("Only staff, admins and catalog:write keys may change the catalog.")


def check_fields(values: dict[str, Any]) -> None:
    """Every given value fits its column, or ``InvalidInput`` naming each one that does not."""
    errors = []
    for name, value in values.items():
        problem = _problem(name, value)
        if problem:
            errors.append(FieldError((name,), problem))
    if errors:
        raise InvalidInput("Invalid fields.", errors=errors)


def _problem(name: str, value: Any) -> str | None:
    if value is None:
        return "may not be null"
    if name in ("price_cents", "stock", "rating"):
        low, high = (1, 5) if name == "rating" else (0, MAX_INT)
        ok = storable_int(value) and low <= value <= high
        return None if ok else f"an integer from {low} to {high}"
    if name == "is_active":
        return None if isinstance(value, bool) else "true or false"
    if name == "category_id":
        return None if storable_int(value) else "not a category id"
    if not storable_text(value):
        return "text without NUL characters"
    if name == "slug":
        ok = len(value) <= 100 and SLUG.fullmatch(value)
        return None if ok else "1 to 100 lowercase letters, digits and single hyphens"
    if name == "sku":
        return (
            None
            if len(value) <= 64 and SKU.fullmatch(value)
            else ("1 to 64 printable characters without spaces")
        )
    limit = TEXT_LIMITS[name]
    if name in ("name", "title") and not value.strip():
        return "may not be blank"
    return None if len(value) <= limit else f"at most {limit} characters"


async def _flush_unique(session: AsyncSession, what: str) -> None:
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"{what} is already taken.") from None


async def _category_by_slug(session: AsyncSession, slug: str) -> Category:
    category = (
        await session.scalar(select(Category).where(Category.slug == slug))
        if storable_text(slug)
        else None
    )
    if category is None:
        raise NotFound(f"No category with slug {slug!r}.")
    return category


async def create_category(session: AsyncSession, actor: Actor, *, slug: str, name: str) -> Category:
    """A new category; ``Conflict`` if the slug is taken."""
    require_catalog_writer(actor)
    check_fields({"slug": slug, "name": name})
    category = Category(slug=slug, name=name.strip(), created_at=utcnow())
    session.add(category)
    await _flush_unique(session, f"The slug {slug!r}")
    category_changed(session, category.id)
    return category


async def update_category(
    session: AsyncSession, actor: Actor, *, category_slug: str, **changes: Any
) -> Category:
    """Renames a category or changes its slug."""
    require_catalog_writer(actor)
    only_fields(changes, {"slug", "name"})
    check_fields(changes)
    category = await _category_by_slug(session, category_slug)
    for name, value in changes.items():
        setattr(category, name, value.strip() if name == "name" else value)
    await _flush_unique(session, f"The slug {changes.get('slug')!r}")
    category_changed(session, category.id)
    return category


async def delete_category(session: AsyncSession, actor: Actor, *, slug: str) -> Category:
    """Removes an empty category; one that holds products is a ``Conflict``."""
    require_catalog_writer(actor)
    category = await _category_by_slug(session, slug)
    refusal = Conflict(
        f"Category {slug!r} still holds products: move them to another "
        "category or deactivate them (is_active: false) instead."
    )
    if await session.scalar(select(exists().where(Product.category_id == category.id))):
        raise refusal
    await session.delete(category)
    try:
        await session.flush()
    except IntegrityError:  # a product arrived meanwhile (the foreign key restricts)
        raise refusal from None
    category_changed(session, category.id)
    return category


def only_fields(changes: dict[str, Any], allowed: set[str]) -> None:
    """Refuses fields an update may not set (the server owns ids and timestamps)."""
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise InvalidInput(
            "Unknown fields.",
            errors=[FieldError((name,), "not a field you may set") for name in unknown],
        )


async def _check_category(session: AsyncSession, category_id: int) -> None:
    if not await session.scalar(select(exists().where(Category.id == category_id))):
        raise InvalidInput(
            "No such category.",
            errors=[FieldError(("category_id",), f"no category has id {category_id}")],
        )


async def _product_for_writer(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id) if storable_int(product_id) else None
    if product is None:
        raise NotFound("No such product.")
    return product


PRODUCT_FIELDS = {"sku", "name", "description", "price_cents", "stock", "category_id", "is_active"}


async def create_product(
    session: AsyncSession,
    actor: Actor,
    *,
    sku: str,
    name: str,
    price_cents: int,
    category_id: int,
    description: str = "",
    stock: int = 0,
    is_active: bool = True,
) -> Product:
    """A new product; ``Conflict`` if the sku is taken."""
    require_catalog_writer(actor)
    check_fields(
        {
            "sku": sku,
            "name": name,
            "description": description,
            "price_cents": price_cents,
            "stock": stock,
            "category_id": category_id,
            "is_active": is_active,
        }
    )
    await _check_category(session, category_id)
    now = utcnow()
    product = Product(
        sku=sku,
        name=name.strip(),
        description=description,
        price_cents=price_cents,
        stock=stock,
        category_id=category_id,
        is_active=is_active,
        created_at=now,
        updated_at=now,
    )
    session.add(product)
    await _flush_unique(session, f"The sku {sku!r}")
    product_changed(session, product.id)
    return product


async def update_product(
    session: AsyncSession, actor: Actor, *, product_id: int, **changes: Any
) -> Product:
    """Changes any of a product's fields but its id and timestamps.

    ``updated_at`` moves when the listing changes (everything but ``stock``): stock
    moves with every order, and what only staff see of it is not an edit of the listing.
    """
    require_catalog_writer(actor)
    only_fields(changes, PRODUCT_FIELDS)
    check_fields(changes)
    product = await _product_for_writer(session, product_id)
    if "category_id" in changes:
        await _check_category(session, changes["category_id"])
    had_stock = product.stock > 0
    for name, value in changes.items():
        setattr(product, name, value.strip() if name == "name" else value)
    listing = changes.keys() - {"stock"}
    if listing:
        product.updated_at = utcnow()
    await _flush_unique(session, f"The sku {changes.get('sku')!r}")
    if listing:
        product_changed(session, product.id)
    if "stock" in changes:
        stock_changed(session, product.id, flipped=had_stock != (product.stock > 0))
    return product


async def delete_product(session: AsyncSession, actor: Actor, *, product_id: int) -> Product:
    """Removes a product never ordered; one in an order is a ``Conflict``."""
    require_catalog_writer(actor)
    product = await _product_for_writer(session, product_id)
    refusal = Conflict(
        "This product appears in orders: deactivate it (is_active: false) instead of deleting it."
    )
    if await session.scalar(select(exists().where(OrderItem.product_id == product.id))):
        raise refusal
    await session.delete(product)
    try:
        await session.flush()
    except IntegrityError:  # ordered meanwhile (the foreign key restricts)
        raise refusal from None
    product_changed(session, product.id)
    return product
