"""The branch to the compiled read path (``data.compiled.rest``) for catalog handlers.

A handler asks ``compiled_body``; ``None`` means "answer as before" (the service path,
which stays the reference: not found, invalid input, SQLite, the setting off).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.types import Scope

from data.compiled import Unsupported, actor_key
from data.compiled.rest import STATEMENTS, Shape
from data.outages import unavailable_from
from rest.representations import Representation

log = logging.getLogger("gateway.rest")


def shape(rep: Representation, fields: str | None) -> Shape:
    wanted = rep.fieldset(fields)
    return Shape(rep.money_objects, None if wanted is None else frozenset(wanted))


Respond = Callable[[Request, Any], Response]


@dataclass(eq=False)
class RestPlan:
    """The one statement a compiled REST read ran, and how its handler answered;
    ``memo``: the statement's last text and the answer made from it (status, headers,
    body), kept by the lane; the headers are a tuple, the same object while the memo
    stands (the front door keeps its own work on them by it)."""

    sql: str
    params: tuple[Any, ...]
    respond: Respond
    memo: tuple[str, int, tuple[tuple[bytes, bytes], ...], bytes] | None = None
    route: Any = None  # the lane's ``scope["route"]`` for it, made on its first repeat


class RestPlans:
    """REST reads the handlers answered with one compiled statement, by everything that
    decides the answer: path, query string, scheme and host (``Link`` carries them) and
    the actor's key. ``gateway.compiled_lane`` answers their repeats. Bounded."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._plans: dict[tuple[Any, ...], RestPlan] = {}

    @staticmethod
    def key(scope: Scope, actor: Any) -> tuple[Any, ...]:
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        return (scope["path"], scope["query_string"], scope["scheme"], host,
                actor_key(actor))

    def remember(self, key: tuple[Any, ...], plan: RestPlan) -> None:
        if len(self._plans) >= self.size:
            self._plans.clear()
        self._plans[key] = plan

    def find(self, scope: Scope, actor: Any) -> RestPlan | None:
        """The plan remembered for this request (the lane asks on every REST read)."""
        return self._plans.get(self.key(scope, actor)) if self._plans else None


async def compiled_body(
    request: Request, session: AsyncSession, call: Callable[[], Awaitable[Any]],
    respond: Respond,
) -> Any:
    """The body the compiled path builds, or ``None`` where the service path answers.

    ``respond`` is how the handler answers with that body; a read that ran one compiled
    statement is remembered with it for the compiled lane."""
    state = request.app.state
    if not getattr(state, "compiled_reads", False) or state.db.dialect != "postgresql":
        return None
    ran: list[tuple[str, tuple[Any, ...]]] = []
    token = STATEMENTS.set(ran)
    try:
        body = await call()
        plans: RestPlans | None = getattr(state, "rest_plans", None)
        if (body is not None and plans is not None and len(ran) == 1
                and request.method == "GET"):
            actor = getattr(request.state, "actor", None)
            if actor is not None:
                plans.remember(plans.key(request.scope, actor), RestPlan(*ran[0], respond))
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
