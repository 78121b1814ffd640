"""FastAPI dependencies shared by every REST handler (``Annotated`` aliases).

All ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
hop per dependency per request for functions that only read attributes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import ANONYMOUS, Actor
from data.attempts import NO_BACKOFF, LoginAttempts
from data.db import Database
from data.errors import DomainError
from data.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageRequest
from data.tokens import TokenIssuer
from rest.representations import V1, V2, Representation


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_tokens(request: Request) -> TokenIssuer:
    tokens: TokenIssuer = request.app.state.tokens
    return tokens


async def get_actor(request: Request) -> Actor:
    """The principal the identity middleware resolved for this request."""
    error: DomainError | None = getattr(request.state, "identity_error", None)
    if error is not None:
        raise error
    return getattr(request.state, "actor", ANONYMOUS)


def get_login_attempts(request: Request) -> LoginAttempts:
    """The failed-login backoff the gateway installed, for this request's client."""
    attempts_for = getattr(request.app.state, "login_attempts_for", None)
    return NO_BACKOFF if attempts_for is None else attempts_for(request.scope)


async def read_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.read() as session:
        yield session


async def write_session(db: Annotated[Database, Depends(get_db)]) -> AsyncIterator[AsyncSession]:
    async with db.write() as session:
        yield session


async def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = (
        DEFAULT_PAGE_SIZE
    ),
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> PageRequest:
    return PageRequest(first=limit, after=cursor)


class VersionRoute(APIRoute):
    """A route of one API version: it carries that version's representation.

    Handlers are module-level functions shared by ``/api/v1`` and ``/api/v2``; a version's
    router registers them with its own route class, and ``get_representation`` reads the
    representation from the route serving the request.
    """

    representation: Representation


class V1Route(VersionRoute):
    representation = V1


class V2Route(VersionRoute):
    representation = V2


ROUTE_CLASSES: dict[str, type[VersionRoute]] = {"v1": V1Route, "v2": V2Route}


async def get_representation(request: Request) -> Representation:
    """How the API version serving this request shows objects (v1 or v2)."""
    route = request.scope["route"]
    assert isinstance(route, VersionRoute), "registered without a version's route class"
    return route.representation


TokensDep = Annotated[TokenIssuer, Depends(get_tokens)]
DbDep = Annotated[Database, Depends(get_db)]
ActorDep = Annotated[Actor, Depends(get_actor)]
ReadSession = Annotated[AsyncSession, Depends(read_session)]
# "function" scope: the transaction commits (and its changes are announced) before the
# response is sent. The default scope would run the commit after the client had its 2xx.
WriteSession = Annotated[AsyncSession, Depends(write_session, scope="function")]
PageDep = Annotated[PageRequest, Depends(page_request)]
AttemptsDep = Annotated[LoginAttempts, Depends(get_login_attempts)]
RepresentationDep = Annotated[Representation, Depends(get_representation)]
