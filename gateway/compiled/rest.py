"""The branch to the compiled read path (``gateway.compiled.planner.rest``) for catalog handlers.

``CompiledRestReads`` is the catalog handlers' ``rest.fast_reads.FastReads``: each read
asks ``compiled_body``; ``None`` means "answer as before" (the service path, which stays
the reference: not found, invalid input, SQLite, the setting off).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import QueryParams
from starlette.responses import Response
from starlette.types import Scope

from data.actor import Actor
from data.outages import unavailable_from
from data.pagination import PageRequest
from data.services.products import ProductFilter
from gateway.compiled.cache import BoundedCache, Record
from gateway.compiled.planner import Unsupported, actor_key
from gateway.compiled.planner import rest as statements
from gateway.compiled.planner.rest import STATEMENTS, Shape
from gateway.compiled.planner.sql import Bound, Unbindable, bind
from rest.catalog import Q_MAX_LENGTH
from rest.representations import Representation
from rest.responses import envelope_response, json_response

log = logging.getLogger("gateway.rest")


def shape(rep: Representation, fields: str | None) -> Shape:
    wanted = rep.fieldset(fields)
    return Shape(rep.money_objects, None if wanted is None else frozenset(wanted))


Respond = Callable[[Request, Any], Response]

# Query parameters of the catalog reads: the first decide the statement's text (a plan's
# key holds their values), the others are its parameters (the key holds only their kind).
KEYED = ("limit", "sort", "fields", "in_stock")
BOUND = ("cursor", "category", "q", "min_price", "max_price")
_CANONICAL_INT = re.compile(r"0|[1-9][0-9]{0,17}")


@dataclass(frozen=True)
class RestValues:
    """A REST read's values as its plan's sources read them: path and query parameters,
    as Starlette decodes them."""

    path: dict[str, str]
    query: dict[str, str]


def route_of(path: str) -> tuple[str, dict[str, str]] | None:
    """The catalog route template a GET path takes, and its path parameters, as Starlette
    would match them (``None``: not a catalog read)."""
    parts = path.split("/")
    if len(parts) < 4 or parts[0] or parts[1] != "api" or parts[2] not in ("v1", "v2"):
        return None
    base, tail = f"/api/{parts[2]}", parts[3:]
    if tail in (["products"], ["categories"]):
        return f"{base}/{tail[0]}", {}
    if len(tail) == 2 and tail[1]:
        if tail[0] == "products":
            return f"{base}/products/{{product_id}}", {"product_id": tail[1]}
        if tail[0] == "categories":
            return f"{base}/categories/{{slug}}", {"slug": tail[1]}
    if len(tail) == 3 and tail[0] == "products" and tail[1] and tail[2] == "reviews":
        return f"{base}/products/{{product_id}}/reviews", {"product_id": tail[1]}
    return None


def _kind(value: str | None) -> str:
    return "absent" if value is None else "text" if value else "empty"


def _canonical_int(text: str) -> int:
    """A decimal integer written the one way (other spellings go to FastAPI, which decides)."""
    if _CANONICAL_INT.fullmatch(text) is None:
        raise Unbindable(text[:40])
    return int(text)


def path_int(name: str, value: int) -> Bound:
    """A path parameter FastAPI parsed as ``int``, bound for the plan of its route."""
    return Bound(value, lambda values: _canonical_int(values.path[name]))


def path_text(name: str, value: str) -> Bound:
    return Bound(value, lambda values: values.path[name])


def query_value(name: str, value: Any, max_length: int | None = None, number: bool = False) -> Any:
    """A query parameter FastAPI parsed (text, or a non-negative ``int``), bound for the
    plan of its shape; ``None`` stays ``None`` (its absence is the shape's)."""
    if value is None:
        return None

    def source(values: RestValues) -> Any:
        text = values.query[name]
        if number:
            return _canonical_int(text)
        if max_length is not None and len(text) > max_length:
            raise Unbindable(name)
        return text

    return Bound(value, source)


@dataclass(eq=False)
class RestPlan:
    """The one statement a compiled REST read ran, the sources of its parameters, and how
    its handler answered."""

    sql: str
    params: tuple[Any, ...]
    sources: tuple[Any, ...]
    respond: Respond
    route: Any = None  # the lane's ``scope["route"]`` for it, made on its first repeat

    def parameters(self, values: RestValues) -> tuple[Any, ...] | None:
        try:
            return bind(self.params, self.sources, values)
        except Exception:  # a value the plan cannot take: the handler decides
            return None


class RestPlans:
    """REST reads the handlers answered with one compiled statement, one plan per shape:
    route template, the actor's key and the query's ``KEYED`` values and ``BOUND`` kinds
    (path ids, slugs, cursors and filter values are bound). ``gateway.compiled.lane``
    answers later requests of each shape. Bounded (``BoundedCache``)."""

    def __init__(self, size: int, record: Record | None = None) -> None:
        self.cache = BoundedCache(size, record=record)

    @staticmethod
    def request_key(
        scope: Scope, template: str, actor: Any
    ) -> tuple[tuple[Any, ...], RestValues] | None:
        """A request's plan key and values (``None``: a query this lane leaves alone,
        such as a parameter given twice)."""
        query: dict[str, str] = {}
        for name, value in QueryParams(scope["query_string"]).multi_items():
            if name in query:
                if name in KEYED or name in BOUND:
                    return None
                continue
            query[name] = value
        shape = tuple(
            [query.get(name) for name in KEYED] + [_kind(query.get(name)) for name in BOUND]
        )
        route = route_of(scope["path"])
        if route is None or route[0] != template:
            return None
        return (template, actor_key(actor), shape), RestValues(route[1], query)

    def remember(self, key: tuple[Any, ...], plan: RestPlan) -> None:
        self.cache.put(key, plan)

    def find(self, scope: Scope, actor: Any) -> tuple[RestPlan, tuple[Any, ...]] | None:
        """The plan of this request's shape and its parameters (the lane asks on every
        REST read)."""
        route = route_of(scope["path"])
        if route is None:
            return None
        found = self.request_key(scope, route[0], actor)
        if found is None:
            return None
        plan: RestPlan | None = self.cache.get(found[0])
        if plan is None:
            return None
        params = plan.parameters(found[1])
        return None if params is None else (plan, params)


async def compiled_body(
    request: Request,
    session: AsyncSession,
    call: Callable[[], Awaitable[Any]],
    respond: Respond,
) -> Any:
    """The body the compiled path builds, or ``None`` where the service path answers.

    ``respond`` is how the handler answers with that body; a read that ran one compiled
    statement is remembered with it for the compiled lane, as the plan of its shape."""
    state = request.app.state
    if not getattr(state, "compiled_reads", False) or state.db.dialect != "postgresql":
        return None
    if getattr(request.state, "compiled_missed", False):  # the lane ran it already
        return None
    ran: list[tuple[str, tuple[Any, ...], tuple[Any, ...]]] = []
    token = STATEMENTS.set(ran)
    try:
        body = await call()
        plans: RestPlans | None = getattr(state, "rest_plans", None)
        actor = getattr(request.state, "actor", None)
        route = request.scope.get("route")
        if (
            plans is not None
            and len(ran) == 1
            and request.method == "GET"
            and actor is not None
            and route is not None
        ):
            template = route_of(request.scope["path"])
            # The lane finds the plan by its own reading of the path: the same route's.
            if template is not None and template[0].endswith(route.path):
                _remember(plans, request, template[0], actor, ran[0], respond)
        return body
    except Unsupported:
        return None
    except Exception as exc:
        outage = unavailable_from(exc, transport=True)
        if outage is not None:
            raise outage from exc  # the reference would find the database down too
        # A bug here must not become the answer: log it, and let the reference answer.
        log.exception("compiled_read_failed")
        await session.rollback()
        return None
    finally:
        STATEMENTS.reset(token)


def _remember(
    plans: RestPlans,
    request: Request,
    template: str,
    actor: Any,
    ran: tuple[str, tuple[Any, ...], tuple[Any, ...]],
    respond: Respond,
) -> None:
    found = plans.request_key(request.scope, template, actor)
    if found is None:
        return
    key, values = found
    plan = RestPlan(*ran, respond)
    # The plan's sources must give back the very parameters it ran with.
    if plan.parameters(values) == plan.params:
        plans.remember(key, plan)
    else:
        log.error("compiled_plan_unbindable")


def bound_page(page: PageRequest) -> PageRequest:
    """The page with its cursor bound to the query (the size is the plan's own)."""
    return PageRequest(first=page.first, after=query_value("cursor", page.after))


async def _answer(
    request: Request,
    session: AsyncSession,
    call: Callable[[], Awaitable[Any]],
    respond: Respond,
) -> Response | None:
    body = await compiled_body(request, session, call, respond)
    return None if body is None else respond(request, body)


class CompiledRestReads:
    """The catalog reads as compiled statements (``rest.fast_reads.FastReads``): the
    handler's values bound to the query and path they came from, so that the plan the
    read leaves behind serves later requests of its shape."""

    async def categories(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        page: PageRequest,
    ) -> Response | None:
        return await _answer(
            request,
            session,
            lambda: statements.rest_categories(
                session, actor, shape(rep, fields), page=bound_page(page)
            ),
            envelope_response,
        )

    async def category(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        slug: str,
    ) -> Response | None:
        return await _answer(
            request,
            session,
            lambda: statements.rest_category(
                session, actor, shape(rep, fields), slug=path_text("slug", slug)
            ),
            json_response,
        )

    async def products(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        where: ProductFilter,
        sort: str,
        page: PageRequest,
    ) -> Response | None:
        bound = ProductFilter(
            category=query_value("category", where.category),
            q=query_value("q", where.q, max_length=Q_MAX_LENGTH),
            min_price=query_value("min_price", where.min_price, number=True),
            max_price=query_value("max_price", where.max_price, number=True),
            in_stock=where.in_stock,
        )
        return await _answer(
            request,
            session,
            lambda: statements.rest_products(
                session, actor, shape(rep, fields), where=bound, sort=sort, page=bound_page(page)
            ),
            envelope_response,
        )

    async def product(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        product_id: int,
    ) -> Response | None:
        return await _answer(
            request,
            session,
            lambda: statements.rest_product(
                session, actor, shape(rep, fields), product_id=path_int("product_id", product_id)
            ),
            json_response,
        )

    async def product_reviews(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        product_id: int,
        page: PageRequest,
    ) -> Response | None:
        return await _answer(
            request,
            session,
            lambda: statements.rest_product_reviews(
                session,
                actor,
                shape(rep, fields),
                product_id=path_int("product_id", product_id),
                page=bound_page(page),
            ),
            envelope_response,
        )
