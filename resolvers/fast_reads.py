"""The hook through which another path may answer a validated operation.

The app factory installs a ``FastReads`` (the gateway's compiled read path) on
``app.state.graphql_fast_reads``; ``get_context`` hands it to every request's context, and
``FastReadsHook``, an extension of the schema, asks it in ``on_execute``. An answer becomes
the result, so graphql-core never executes; ``None`` (or no hook) and the resolvers run
exactly as before: they stay the reference.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from graphql import ExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext


class FastReads(Protocol):
    async def answer(self, ec: ExecutionContext) -> dict[str, Any] | None:
        """The ``data`` of the validated operation, or ``None``: the resolvers answer."""
        ...


class FastReadsHook(SchemaExtension):
    """Asks the context's ``FastReads`` for the answer when nothing before it gave one."""

    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        fast: FastReads | None = getattr(ec.context, "fast_reads", None)
        if fast is not None and ec.result is None:
            data = await fast.answer(ec)
            if data is not None:
                ec.result = ExecutionResult(data=data)
        yield
