"""Catalog and review writes: thin adapters over ``data.services.catalog_writes`` and
``review_writes``. v1 takes ``price_cents``, v2 a Money object; nothing else differs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StrictBool, StrictStr
from starlette.responses import Response

from data.actor import Actor
from data.inputs import MAX_INT
from data.models import Review
from data.money import cents_of
from data.services import catalog_writes, review_writes, users
from rest.bodies import (
    AMOUNT,
    NON_BLANK,
    SKU,
    SLUG,
    TEXT,
    JsonInt,
    Loc,
    PatchBody,
    StrictBody,
    located,
)
from rest.deps import ROUTE_CLASSES, ActorDep, RepresentationDep, WriteSession
from rest.openapi import problems
from rest.representations import Representation
from rest.responses import json_response
from rest.schemas import CategoryOut, ProductV1, ProductV2, ReviewOut

CATEGORY_LOC: dict[Loc, Loc] = {("category_id",): ("body", "category")}


class CategoryIn(StrictBody):
    slug: StrictStr = Field(
        max_length=100, examples=["board-games"], json_schema_extra={"pattern": SLUG}
    )
    name: StrictStr = Field(max_length=200, json_schema_extra={"pattern": NON_BLANK})


class CategoryPatch(PatchBody):
    slug: StrictStr | None = Field(None, max_length=100, json_schema_extra={"pattern": SLUG})
    name: StrictStr | None = Field(None, max_length=200, json_schema_extra={"pattern": NON_BLANK})


class MoneyIn(StrictBody):
    amount: StrictStr = Field(
        max_length=20,
        examples=["19.99"],
        description="Decimal string in major units.",
        json_schema_extra={"pattern": AMOUNT},
    )
    currency: StrictStr = Field(max_length=3, examples=["USD"], json_schema_extra={"enum": ["USD"]})


class ProductInBase(StrictBody):
    sku: StrictStr = Field(max_length=64, json_schema_extra={"pattern": SKU})
    name: StrictStr = Field(max_length=200, json_schema_extra={"pattern": NON_BLANK})
    description: StrictStr = Field("", max_length=10_000, json_schema_extra={"pattern": TEXT})
    stock: JsonInt = Field(0, ge=0, le=MAX_INT)
    category: JsonInt = Field(ge=1, le=MAX_INT, description="The category's id.")
    is_active: StrictBool = True


class ProductInV1(ProductInBase):
    price_cents: JsonInt = Field(ge=0, le=MAX_INT)


class ProductInV2(ProductInBase):
    price: MoneyIn


class ProductPatchBase(PatchBody):
    sku: StrictStr | None = Field(None, max_length=64, json_schema_extra={"pattern": SKU})
    name: StrictStr | None = Field(None, max_length=200, json_schema_extra={"pattern": NON_BLANK})
    description: StrictStr | None = Field(
        None, max_length=10_000, json_schema_extra={"pattern": TEXT}
    )
    stock: JsonInt | None = Field(None, ge=0, le=MAX_INT)
    category: JsonInt | None = Field(None, ge=1, le=MAX_INT)
    is_active: StrictBool | None = None


class ProductPatchV1(ProductPatchBase):
    price_cents: JsonInt | None = Field(None, ge=0, le=MAX_INT)


class ProductPatchV2(ProductPatchBase):
    price: MoneyIn | None = None


class ReviewIn(StrictBody):
    rating: JsonInt = Field(ge=1, le=5)
    title: StrictStr = Field(max_length=200, json_schema_extra={"pattern": NON_BLANK})
    body: StrictStr = Field("", max_length=10_000, json_schema_extra={"pattern": TEXT})


class ReviewPatch(PatchBody):
    rating: JsonInt | None = Field(None, ge=1, le=5)
    title: StrictStr | None = Field(None, max_length=200, json_schema_extra={"pattern": NON_BLANK})
    body: StrictStr | None = Field(None, max_length=10_000, json_schema_extra={"pattern": TEXT})


def product_values(body: StrictBody) -> dict[str, Any]:
    """A product body as service keywords (``category`` → ``category_id``, Money → cents)."""
    values = body.model_dump(exclude_unset=True)
    if "category" in values:
        values["category_id"] = values.pop("category")
    if "price" in values:
        price = values.pop("price")
        values["price_cents"] = (
            None if price is None else cents_of(price["amount"], price["currency"])
        )
    return values


async def review_body(
    request: Request,
    session: Any,
    actor: Actor,
    rep: Representation,
    review: Review,
    status: int = 200,
) -> Response:
    [author] = await users.load_users(session, actor, [review.author_id])
    return json_response(request, rep.review(actor, review, author), status=status)


async def create_category(
    request: Request,
    body: CategoryIn,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Create a category (staff, admins, catalog:write keys)."""
    with located():
        category = await catalog_writes.create_category(session, actor, **body.model_dump())
    return json_response(request, rep.category(actor, category), status=201)


async def update_category(
    request: Request,
    slug: str,
    body: CategoryPatch,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Rename a category or change its slug."""
    with located():
        category = await catalog_writes.update_category(
            session, actor, category_slug=slug, **body.model_dump(exclude_unset=True)
        )
    return json_response(request, rep.category(actor, category))


async def delete_category(slug: str, session: WriteSession, actor: ActorDep) -> Response:
    """Delete an empty category (move or deactivate its products first)."""
    await catalog_writes.delete_category(session, actor, slug=slug)
    return Response(status_code=204)


async def create_product(
    request: Request, body: StrictBody, session: Any, actor: Actor, rep: Representation
) -> Response:
    """Create a product (staff, admins, catalog:write keys)."""
    with located(renames=CATEGORY_LOC):
        product = await catalog_writes.create_product(session, actor, **product_values(body))
    return json_response(request, rep.product(actor, product), status=201)


async def create_product_v1(
    request: Request,
    body: ProductInV1,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    return await create_product(request, body, session, actor, rep)


async def create_product_v2(
    request: Request,
    body: ProductInV2,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    return await create_product(request, body, session, actor, rep)


async def update_product(
    request: Request,
    product_id: int,
    body: StrictBody,
    session: Any,
    actor: Actor,
    rep: Representation,
) -> Response:
    """Change a product's fields, its stock and whether it is for sale."""
    with located(renames=CATEGORY_LOC):
        product = await catalog_writes.update_product(
            session, actor, product_id=product_id, **product_values(body)
        )
    return json_response(request, rep.product(actor, product))


async def update_product_v1(
    request: Request,
    product_id: int,
    body: ProductPatchV1,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    return await update_product(request, product_id, body, session, actor, rep)


async def update_product_v2(
    request: Request,
    product_id: int,
    body: ProductPatchV2,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    return await update_product(request, product_id, body, session, actor, rep)


async def delete_product(product_id: int, session: WriteSession, actor: ActorDep) -> Response:
    """Delete a product that was never ordered (else deactivate it)."""
    await catalog_writes.delete_product(session, actor, product_id=product_id)
    return Response(status_code=204)


async def create_review(
    request: Request,
    product_id: int,
    body: ReviewIn,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Review a product (once per product; signed-in users)."""
    with located():
        review = await review_writes.create_review(
            session, actor, product_id=product_id, **body.model_dump()
        )
    return await review_body(request, session, actor, rep, review, status=201)


async def update_review(
    request: Request,
    review_id: int,
    body: ReviewPatch,
    session: WriteSession,
    actor: ActorDep,
    rep: RepresentationDep,
) -> Response:
    """Edit your own review."""
    with located():
        review = await review_writes.update_review(
            session, actor, review_id=review_id, **body.model_dump(exclude_unset=True)
        )
    return await review_body(request, session, actor, rep, review)


async def delete_review(review_id: int, session: WriteSession, actor: ActorDep) -> Response:
    """Delete your own review (staff and admins: any)."""
    await review_writes.delete_review(session, actor, review_id=review_id)
    return Response(status_code=204)


@dataclass(frozen=True)
class ProductWrites:
    """One version's product write handlers: they differ only in the body model they read."""

    model: type[BaseModel]
    create: Callable[..., Awaitable[Response]]
    update: Callable[..., Awaitable[Response]]


PRODUCT_WRITES = {
    False: ProductWrites(ProductV1, create_product_v1, update_product_v1),
    True: ProductWrites(ProductV2, create_product_v2, update_product_v2),
}


def catalog_writes_router(rep: Representation) -> APIRouter:
    """The catalog and review write routes of one API version: the handlers above.

    The product handlers are the version's pair, registered under the shared name and
    description so the operation reads the same in both versions."""
    router = APIRouter(
        tags=["catalog"],
        responses=problems(400, 403, 404, 409),
        route_class=ROUTE_CLASSES[rep.version],
    )
    products = PRODUCT_WRITES[rep.money_objects]
    router.add_api_route(
        "/categories",
        create_category,
        methods=["POST"],
        status_code=201,
        responses={201: {"model": CategoryOut}},
    )
    router.add_api_route(
        "/categories/{slug}",
        update_category,
        methods=["PATCH"],
        responses={200: {"model": CategoryOut}},
    )
    router.add_api_route("/categories/{slug}", delete_category, methods=["DELETE"], status_code=204)
    router.add_api_route(
        "/products",
        products.create,
        methods=["POST"],
        status_code=201,
        responses={201: {"model": products.model}},
        name=create_product.__name__,
        description=create_product.__doc__,
    )
    router.add_api_route(
        "/products/{product_id}",
        products.update,
        methods=["PATCH"],
        responses={200: {"model": products.model}},
        name=update_product.__name__,
        description=update_product.__doc__,
    )
    router.add_api_route(
        "/products/{product_id}", delete_product, methods=["DELETE"], status_code=204
    )
    router.add_api_route(
        "/products/{product_id}/reviews",
        create_review,
        methods=["POST"],
        status_code=201,
        responses={201: {"model": ReviewOut}},
    )
    router.add_api_route(
        "/reviews/{review_id}",
        update_review,
        methods=["PATCH"],
        responses={200: {"model": ReviewOut}},
    )
    router.add_api_route("/reviews/{review_id}", delete_review, methods=["DELETE"], status_code=204)
    return router
