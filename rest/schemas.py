"""Pydantic models that describe the REST bodies in OpenAPI.

Handlers render bodies directly (sparse fieldsets and hidden fields make keys optional),
so these models document the shapes; a test checks real bodies against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

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
    author_name: str
    rating: int = Field(ge=1, le=5)
    title: str
    body: str
    created_at: datetime


class ListOf(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    code: str = Field(examples=["NOT_FOUND"])
    request_id: str | None
    errors: list[dict[str, object]] | None = None
