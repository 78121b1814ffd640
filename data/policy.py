"""Visibility rules, written once as SQL predicates and field checks.

Services and dataloaders apply the row predicates; both interfaces ask the field checks.
Keeping rows rules as SQL expressions lets a future SQL compiler reuse them.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true

from data.actor import Actor
from data.models import Order, Product, ProductCount, User


def sees_inactive_products(actor: Actor) -> bool:
    return actor.is_staff or actor.has_scope("catalog:read")


def product_visible(
    actor: Actor, rows: type[Product] | type[ProductCount] = Product
) -> ColumnElement[bool]:
    """Rows of ``products`` that exist for this actor; with ``rows=ProductCount``, the
    groups of ``product_counts`` that count them."""
    if sees_inactive_products(actor):
        return true()
    return rows.is_active.is_(True)


def can_read_stock(actor: Actor) -> bool:
    """``Product.stock``: staff, admin and keys with ``catalog:read``."""
    return actor.is_staff or actor.has_scope("catalog:read")


def can_read_email(actor: Actor, user: User | int) -> bool:
    """``User.email``: that user, staff and admin."""
    user_id = user if isinstance(user, int) else user.id
    return actor.is_staff or (actor.user_id is not None and actor.user_id == user_id)


def visibility_class(actor: Actor) -> str:
    """A name for everything that changes what the catalog looks like to this actor.

    The response cache shares entries only within a class. ``catalog-full`` sees inactive
    products and ``stock``; ``authenticated`` (customers, keys without ``catalog:read``)
    sees what ``anonymous`` sees today, but stays apart so a rule that one day shows
    customers more can never leak into anonymous answers.
    """
    if sees_inactive_products(actor):
        return "catalog-full"
    if actor.is_anonymous:
        return "anonymous"
    return "authenticated"


def can_read_private_user_fields(actor: Actor, user: User | int) -> bool:
    """A user's email, role, flags and dates: the same people as ``User.email``.

    Everyone else meets other users only as review authors, by name.
    """
    return can_read_email(actor, user)


def order_visible(actor: Actor) -> ColumnElement[bool]:
    """Rows of ``orders`` that exist for this actor: a customer's own, or all for staff
    and ``orders:read`` keys. Everyone else sees none (``false``)."""
    if actor.is_staff or actor.has_scope("orders:read"):
        return true()
    if actor.user_id is not None:
        return Order.customer_id == actor.user_id
    return false()


def user_visible(actor: Actor) -> ColumnElement[bool]:
    """Rows of ``users`` that exist for this actor as users (not as review authors)."""
    if actor.is_staff:
        return true()
    if actor.user_id is not None:
        return User.id == actor.user_id
    return false()
