"""The hook through which another path may answer a catalog read.

The app factory installs a ``FastReads`` (the gateway's compiled read path) on
``app.state.rest_fast_reads``; each catalog handler asks it first and sends what it
answers. ``None`` (or no hook) and the handler answers through the services, which stay
the reference: not found, invalid input, SQLite, the setting off.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from data.actor import Actor
from data.pagination import PageRequest
from data.services.products import ProductFilter
from rest.representations import Representation


class FastReads(Protocol):
    """One method per catalog read, with the handler's validated arguments."""

    async def categories(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        page: PageRequest,
    ) -> Response | None: ...

    async def category(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        slug: str,
    ) -> Response | None: ...

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
    ) -> Response | None: ...

    async def product(
        self,
        request: Request,
        session: AsyncSession,
        actor: Actor,
        rep: Representation,
        fields: str | None,
        *,
        product_id: int,
    ) -> Response | None: ...

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
    ) -> Response | None: ...


def fast_reads(request: Request) -> FastReads | None:
    """The app's hook, if it installed one."""
    return getattr(request.app.state, "rest_fast_reads", None)
