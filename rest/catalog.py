"""Catalog reads: categories, products and their reviews."""

# No ``from __future__ import annotations`` here: FastAPI resolves parameter annotations
# against module globals, and ``Fields`` is local to ``catalog_router`` (it differs per
# version), so string annotations made every request with ``?fields=`` a 500.
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from data.inputs import MAX_INT
from data.services import categories, products, reviews, users
from rest.bodies import TEXT
from rest.deps import ActorDep, PageDep, ReadSession
from rest.fast_reads import fast_reads
from rest.openapi import problems
from rest.representations import (
    CATEGORY_FIELDS,
    PRODUCT_FIELDS,
    REVIEW_FIELDS,
    Representation,
    sparse,
)
from rest.responses import json_response, list_response
from rest.schemas import (
    CategoryOut,
    CategorySparse,
    ListOf,
    ProductV1,
    ProductV2,
    ProductV2Sparse,
    ReviewOut,
    ReviewSparse,
)

Q_MAX_LENGTH = 200


ProductSort = Literal["created_at", "-created_at", "price", "-price", "name", "-name"]


def catalog_router(rep: Representation) -> APIRouter:
    """The catalog routes of one API version."""
    router = APIRouter(tags=["catalog"], responses=problems(404))
    product_model = ProductV2 if rep.money_objects else ProductV1

    def fieldset(allowed: set[str]) -> Any:
        """The ``fields`` query parameter of this version for these field names."""
        names = "|".join(sorted(allowed))
        return Query(
            description="Sparse fieldset, e.g. `id,name`: only `id` and the fields named "
            "are in each object (v2 only).",
            include_in_schema=rep.sparse_fieldsets,
            json_schema_extra={"pattern": f"^(({names})(,({names}))*)?$"},
        )

    category_fields = fieldset(CATEGORY_FIELDS)
    product_fields = fieldset(PRODUCT_FIELDS)
    review_fields = fieldset(REVIEW_FIELDS)
    product_sparse = ProductV2Sparse if rep.sparse_fieldsets else product_model
    category_sparse = CategorySparse if rep.sparse_fieldsets else CategoryOut
    review_sparse = ReviewSparse if rep.sparse_fieldsets else ReviewOut

    @router.get("/categories", responses={200: {"model": ListOf[category_sparse]}})  # type: ignore[valid-type]  # the version's model, for OpenAPI
    async def list_categories(
        request: Request,
        session: ReadSession,
        actor: ActorDep,
        page: PageDep,
        fields: Annotated[str | None, category_fields] = None,
    ) -> Response:
        """List categories by name."""
        render = sparse(rep.category, rep.fieldset(fields), CATEGORY_FIELDS)
        fast = fast_reads(request)
        if fast is not None:
            answer = await fast.categories(request, session, actor, rep, fields, page=page)
            if answer is not None:
                return answer
        result = await categories.list_categories(session, actor, page=page)
        return list_response(request, result, lambda c: render(actor, c))

    @router.get("/categories/{slug}", responses={200: {"model": category_sparse}})
    async def get_category(
        request: Request,
        slug: str,
        session: ReadSession,
        actor: ActorDep,
        fields: Annotated[str | None, category_fields] = None,
    ) -> Response:
        """Get one category by its slug."""
        render = sparse(rep.category, rep.fieldset(fields), CATEGORY_FIELDS)
        fast = fast_reads(request)
        if fast is not None:
            answer = await fast.category(request, session, actor, rep, fields, slug=slug)
            if answer is not None:
                return answer
        category = await categories.find_category(session, actor, slug=slug)
        return json_response(request, render(actor, category))

    @router.get("/products", responses={200: {"model": ListOf[product_sparse]}})  # type: ignore[valid-type]  # the version's model, for OpenAPI
    async def list_products(
        request: Request,
        session: ReadSession,
        actor: ActorDep,
        page: PageDep,
        category: Annotated[
            str | None, Query(description="Category slug.", json_schema_extra={"pattern": TEXT})
        ] = None,
        q: Annotated[
            str | None,
            Query(
                max_length=Q_MAX_LENGTH,
                description="Name search.",
                json_schema_extra={"pattern": TEXT},
            ),
        ] = None,
        min_price: Annotated[
            int | None,
            Query(ge=0, description="Minor units.", json_schema_extra={"maximum": MAX_INT}),
        ] = None,
        max_price: Annotated[
            int | None,
            Query(ge=0, description="Minor units.", json_schema_extra={"maximum": MAX_INT}),
        ] = None,
        in_stock: bool | None = None,
        sort: ProductSort = "-created_at",
        fields: Annotated[str | None, product_fields] = None,
    ) -> Response:
        """List the products the caller may see, filtered and sorted."""
        render = sparse(rep.product, rep.fieldset(fields), PRODUCT_FIELDS)
        where = products.ProductFilter(
            category=category, q=q, min_price=min_price, max_price=max_price, in_stock=in_stock
        )
        fast = fast_reads(request)
        if fast is not None:
            answer = await fast.products(
                request, session, actor, rep, fields, where=where, sort=sort, page=page
            )
            if answer is not None:
                return answer
        result = await products.list_products(session, actor, where=where, sort=sort, page=page)
        return list_response(request, result, lambda p: render(actor, p))

    @router.get("/products/{product_id}", responses={200: {"model": product_sparse}})
    async def get_product(
        request: Request,
        product_id: int,
        session: ReadSession,
        actor: ActorDep,
        fields: Annotated[str | None, product_fields] = None,
    ) -> Response:
        """Get one product by id."""
        render = sparse(rep.product, rep.fieldset(fields), PRODUCT_FIELDS)
        fast = fast_reads(request)
        if fast is not None:
            answer = await fast.product(request, session, actor, rep, fields, product_id=product_id)
            if answer is not None:
                return answer
        product = await products.find_product(session, actor, id=product_id)
        return json_response(request, render(actor, product))

    @router.get("/products/{product_id}/reviews", responses={200: {"model": ListOf[review_sparse]}})  # type: ignore[valid-type]  # the version's model, for OpenAPI
    async def list_product_reviews(
        request: Request,
        product_id: int,
        session: ReadSession,
        actor: ActorDep,
        page: PageDep,
        fields: Annotated[str | None, review_fields] = None,
    ) -> Response:
        """List a product's reviews, newest first."""
        render = sparse(rep.review, rep.fieldset(fields), REVIEW_FIELDS)
        fast = fast_reads(request)
        if fast is not None:
            answer = await fast.product_reviews(
                request, session, actor, rep, fields, product_id=product_id, page=page
            )
            if answer is not None:
                return answer
        result = await reviews.list_product_reviews(
            session, actor, product_id=product_id, page=page
        )
        author_ids = sorted({r.author_id for r in result.items})
        authors = dict(
            zip(author_ids, await users.load_users(session, actor, author_ids), strict=True)
        )
        return list_response(request, result, lambda r: render(actor, r, authors[r.author_id]))

    return router
