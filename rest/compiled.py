"""The branch to the compiled read path (``data.compiled.rest``) for catalog handlers.

A handler asks ``compiled_body``; ``None`` means "answer as before" (the service path,
which stays the reference: not found, invalid input, SQLite, the setting off).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from data.compiled import Unsupported
from data.compiled.rest import Shape
from rest.representations import Representation

log = logging.getLogger("gateway.rest")


def shape(rep: Representation, fields: str | None) -> Shape:
    wanted = rep.fieldset(fields)
    return Shape(rep.money_objects, None if wanted is None else frozenset(wanted))


async def compiled_body(
    request: Request, session: AsyncSession, call: Callable[[], Awaitable[Any]]
) -> Any:
    """The body the compiled path builds, or ``None`` where the service path answers."""
    state = request.app.state
    if not getattr(state, "compiled_reads", False) or state.db.dialect != "postgresql":
        return None
    try:
        return await call()
    except Unsupported:
        return None
    except Exception:
        # A bug here must not become the answer: log it, and let the reference answer.
        log.exception("compiled_read_failed")
        await session.rollback()
        return None
