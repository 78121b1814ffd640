"""How v1 and v2 show the same objects: they differ in money and sparse fieldsets only.

Field rules come from ``data.policy``: a field the actor may not see is absent.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from data.actor import Actor
from data.errors import FieldError, Invalid
from data.models import ApiKey, Category, Order, OrderItem, Product, Review, User
from data.money import CURRENCY, as_utc, format_amount
from data.policy import can_read_private_user_fields, can_read_stock

Body = dict[str, Any]
FIELD_LIST = re.compile(r"(?:[a-z_]+(?:,[a-z_]+)*)?")  # empty: only id


@dataclass(frozen=True)
class Representation:
    version: str
    money_objects: bool
    sparse_fieldsets: bool

    def money(self, name: str, cents: int) -> Body:
        if self.money_objects:
            return {name: {"amount": format_amount(cents), "currency": CURRENCY}}
        return {f"{name}_cents": cents, "currency": CURRENCY}

    def fieldset(self, fields: str | None) -> set[str] | None:
        """The requested sparse fieldset (v2 ``?fields=a,b``), or None for all fields."""
        if fields is None or not self.sparse_fieldsets:
            return None
        if not FIELD_LIST.fullmatch(fields):
            raise Invalid(
                "fields is a comma-separated list of field names, e.g. id,name.",
                errors=[FieldError(("query", "fields"), "names separated by commas")],
            )
        # ``id`` always: an object without it cannot be told apart (JSON:API does the same).
        return {"id", *filter(None, fields.split(","))}

    def category(self, actor: Actor, c: Category) -> Body:
        return {"id": c.id, "slug": c.slug, "name": c.name, "created_at": as_utc(c.created_at)}

    def product(self, actor: Actor, p: Product) -> Body:
        body: Body = {
            "id": p.id,
            "sku": p.sku,
            "name": p.name,
            "description": p.description,
            **self.money("price", p.price_cents),
        }
        if can_read_stock(actor):
            body["stock"] = p.stock
        body.update(
            {
                "in_stock": p.in_stock,
                "category": p.category_id,
                "is_active": p.is_active,
                "created_at": as_utc(p.created_at),
                "updated_at": as_utc(p.updated_at),
            }
        )
        return body

    def review(self, actor: Actor, r: Review, author: User | None) -> Body:
        return {
            "id": r.id,
            "product": r.product_id,
            "author": r.author_id,
            "author_name": author.name if author else None,
            "rating": r.rating,
            "title": r.title,
            "body": r.body,
            "created_at": as_utc(r.created_at),
        }

    def user(self, actor: Actor, u: User) -> Body:
        body: Body = {"id": u.id, "name": u.name}
        if can_read_private_user_fields(actor, u):
            body.update(
                {
                    "email": u.email,
                    "role": u.role,
                    "is_active": u.is_active,
                    "created_at": as_utc(u.created_at),
                }
            )
        return body

    def order_item(self, item: OrderItem) -> Body:
        return {
            "product": item.product_id,
            "quantity": item.quantity,
            **self.money("unit_price", item.unit_price_cents),
            **self.money("subtotal", item.subtotal_cents),
        }

    def order(self, actor: Actor, o: Order, items: list[OrderItem]) -> Body:
        return {
            "id": o.id,
            "customer": o.customer_id,
            "status": o.status,
            **self.money("total", o.total_cents),
            "items": [self.order_item(i) for i in items],
            "created_at": as_utc(o.created_at),
            "updated_at": as_utc(o.updated_at),
        }

    def api_key(self, actor: Actor, k: ApiKey) -> Body:
        return {
            "id": k.id,
            "name": k.name,
            "scopes": list(k.scopes),
            "prefix": k.prefix,
            "created_at": as_utc(k.created_at),
            "last_used_at": as_utc(k.last_used_at) if k.last_used_at else None,
            "revoked_at": as_utc(k.revoked_at) if k.revoked_at else None,
        }


V1 = Representation("v1", money_objects=False, sparse_fieldsets=False)
V2 = Representation("v2", money_objects=True, sparse_fieldsets=True)

PRODUCT_FIELDS = {
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
}
CATEGORY_FIELDS = {"id", "slug", "name", "created_at"}
USER_FIELDS = {"id", "name", "email", "role", "is_active", "created_at"}
ORDER_FIELDS = {"id", "customer", "status", "total", "items", "created_at", "updated_at"}
REVIEW_FIELDS = {"id", "product", "author", "author_name", "rating", "title", "body", "created_at"}


def sparse(
    render: Callable[..., Body], fields: set[str] | None, allowed: set[str]
) -> Callable[..., Body]:
    """``render`` narrowed to ``fields``; unknown field names are ``Invalid``."""
    if fields is None:
        return render
    unknown = sorted(fields - allowed)
    if unknown:
        raise Invalid(
            f"Unknown fields: {', '.join(unknown)}.",
            errors=[
                FieldError(("query", "fields"), f"must be among: {', '.join(sorted(allowed))}")
            ],
        )

    def narrowed(*args: Any) -> Body:
        return {k: v for k, v in render(*args).items() if k in fields}

    return narrowed
