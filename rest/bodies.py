"""Request bodies for writes: strict models, and service errors located in the request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict

from data.errors import FieldError, Invalid

Loc = tuple[str | int, ...]


class StrictBody(BaseModel):
    """Unknown fields are refused (422), as GraphQL refuses unknown input fields: a body
    cannot smuggle in what the operation does not take (a price, a status, a customer)."""

    model_config = ConfigDict(extra="forbid")


@contextmanager
def located(prefix: Loc = ("body",), renames: Mapping[Loc, Loc] | None = None) -> Iterator[None]:
    """Service errors name fields by their service names (``("items", 2, "quantity")``);
    REST names them where they are in the request, as schema validation does
    (``["body", "items", 2, "quantity"]``)."""
    try:
        yield
    except Invalid as exc:
        renames = renames or {}
        errors = [FieldError(renames.get(e.loc, (*prefix, *e.loc)), e.msg) for e in exc.errors]
        raise type(exc)(exc.detail, errors=errors) from None
