"""Pydantic models that describe the REST bodies in OpenAPI.

Handlers render bodies directly (sparse fieldsets and hidden fields make keys optional),
so these models document the shapes; a test checks real bodies against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Money(BaseModel):
    amount: str = Field(examples=["19.99"], description="Decimal string in major units.")
    currency: str = Field(examples=["USD"])


class CategoryOut(BaseModel):
    id: int
    slug: str
    name: str
    created_at: datetime


class ProductBase(BaseModel):
    id: int
    sku: str
    name: str
    description: str
    stock: int | None = Field(
        None, description="Only for staff, admins and keys with `catalog:read`; else absent."
    )
    in_stock: bool
    category: int = Field(description="The category's id.")
    is_active: bool
    created_at: datetime
    updated_at: datetime


class ProductV1(ProductBase):
    price_cents: int
    currency: str


class ProductV2(ProductBase):
    price: Money


class ReviewOut(BaseModel):
    id: int
    product: int = Field(description="The product's id.")
    author: int = Field(description="The author's user id.")
    author_name: str | None = Field(description="Null when the author's account is gone.")
    rating: int = Field(ge=1, le=5)
    title: str
    body: str
    created_at: datetime


class ListOf(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class UserOut(BaseModel):
    id: int
    name: str
    email: str | None = Field(None, description="Only for that user, staff and admins.")
    role: str | None = Field(None, description="Only for that user, staff and admins.")
    is_active: bool | None = Field(None, description="Only for that user, staff and admins.")
    created_at: datetime | None = Field(None, description="Only for that user, staff and admins.")


class OrderItemV1(BaseModel):
    product: int
    quantity: int
    unit_price_cents: int
    subtotal_cents: int
    currency: str


class OrderItemV2(BaseModel):
    product: int
    quantity: int
    unit_price: Money
    subtotal: Money


class OrderBase(BaseModel):
    id: int
    customer: int = Field(description="The customer's user id.")
    status: str = Field(examples=["pending", "paid", "shipped", "delivered", "cancelled"])
    created_at: datetime
    updated_at: datetime


class OrderV1(OrderBase):
    total_cents: int
    currency: str
    items: list[OrderItemV1]


class OrderV2(OrderBase):
    total: Money
    items: list[OrderItemV2]


class ApiKeyOut(BaseModel):
    id: int
    name: str
    scopes: list[str]
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class CreatedApiKeyOut(ApiKeyOut):
    key: str = Field(description="The whole key: shown in this response only.")


def _only_id_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["id"]


SPARSE = ConfigDict(json_schema_extra=_only_id_required)


class CategorySparse(CategoryOut):
    """A category; with `?fields=`, only `id` and the fields named are present."""

    model_config = SPARSE


class ProductV2Sparse(ProductV2):
    """A product; with `?fields=`, only `id` and the fields named are present."""

    model_config = SPARSE


class ReviewSparse(ReviewOut):
    """A review; with `?fields=`, only `id` and the fields named are present."""

    model_config = SPARSE
