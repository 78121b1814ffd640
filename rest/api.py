"""The ``/api/v1`` and ``/api/v2`` routers: the same routes, two representations."""

from __future__ import annotations

from fastapi import APIRouter

from rest import events
from rest.accounts import accounts_router
from rest.catalog import catalog_router
from rest.catalog_writes import catalog_writes_router
from rest.orders import orders_router
from rest.representations import V1, V2, Representation

VERSIONS: dict[str, Representation] = {"v1": V1, "v2": V2}


def api_router(version: str) -> APIRouter:
    """Every REST route of one version, mounted under ``/api/<version>``."""
    rep = VERSIONS[version]
    router = APIRouter(prefix=f"/api/{version}")
    router.include_router(accounts_router(rep))
    router.include_router(catalog_router(rep))
    router.include_router(orders_router(rep))
    router.include_router(catalog_writes_router(rep))
    router.include_router(events.router)  # live order events
    return router
