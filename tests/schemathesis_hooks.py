"""Schemathesis hooks for ``tests/test_openapi_schemathesis.py`` (``SCHEMATHESIS_HOOKS``).

One check, ``accepts_valid_data``: schemathesis' own ``positive_data_acceptance`` (a
request the document calls valid must not be refused with 400 or 422), except for the
refusals no schema can foresee, which the contract requires:

- a cursor the server did not issue (``cursor`` is opaque: a random string is a tampered
  cursor, 400 ``BAD_USER_INPUT``),
- an id in a body that names no row (``category``, an order line's ``product_id``), and
- the same product in two lines of one order (JSON Schema cannot say "unique by key").

Each is recognised by where the problem's ``errors`` say the fault is, so any other
refusal of schema-valid data still fails the run.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance


def _unforeseeable(error: dict[str, Any]) -> bool:
    loc, msg = error.get("loc", []), str(error.get("msg", ""))
    if loc == ["cursor"]:
        return True
    if loc == ["body", "category"] and msg.startswith("no category has id"):
        return True
    # An order line's product that is not for sale, or named twice (a rule across items).
    return (
        len(loc) == 4
        and loc[:2] == ["body", "items"]
        and loc[3] == "product_id"
        and ("does not exist or is not for sale" in msg or "the same product twice" in msg)
    )


@schemathesis.check
def accepts_valid_data(ctx: Any, response: Any, case: Any) -> bool | None:
    """``positive_data_acceptance`` but for opaque cursors and ids that name no row."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        try:
            errors = json.loads(response.content).get("errors") or []
        except (ValueError, AttributeError):
            raise
        if errors and all(_unforeseeable(error) for error in errors):
            return None
        raise


@schemathesis.check
def graphql_never_internal(ctx: Any, response: Any, case: Any) -> bool | None:
    """For /graphql: no 5xx and no ``INTERNAL`` error. Schemathesis' own server-error check
    also counts ``NOT_FOUND``, ``FORBIDDEN`` and ``UNAUTHENTICATED`` at a field's path as
    server errors; here they are the contract's answers to generated ids and roles."""
    assert response.status_code < 500, f"{response.status_code}: {response.content[:500]!r}"
    try:
        errors = json.loads(response.content).get("errors") or []
    except (ValueError, AttributeError):
        return None
    internal = [e for e in errors if (e.get("extensions") or {}).get("code") == "INTERNAL"]
    assert not internal, f"INTERNAL errors: {internal}"
    return None
