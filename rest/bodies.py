"""Request bodies for writes: strict models, and service errors located in the request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StrictInt

from data.errors import FieldError, Invalid

Loc = tuple[str | int, ...]


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON has one kind of number: 5.0 is 5 (JSON Schema's "integer" and GraphQL's Int agree).
# 1.5, "1", true and null are still refused, not coerced.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


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


# JSON Schema patterns for what the services accept, so the document says it (the
# services still check, with their own messages): tools generate requests from these.
_SPACE = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TEXT = r"^[^\x00]*$"  # PostgreSQL text holds no NUL
NON_BLANK = rf"^[^\x00]*[^{_SPACE}][^\x00]*$"
SLUG = r"^[a-z0-9]+(-[a-z0-9]+)*$"
SKU = r"^[!-~]+$"
EMAIL = rf"^[^@{_SPACE}]+@[^{_SPACE}]*\.[^{_SPACE}]*$"
AMOUNT = r"^[0-9]{1,7}(\.[0-9]{1,2})?$"


def _not_null(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        choices = prop.get("anyOf")
        if choices:
            kept = [c for c in choices if c.get("type") != "null"]
            prop.pop("anyOf")
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})
        prop.pop("default", None)


class PatchBody(StrictBody):
    """A partial update whose fields may be left out but not set to null (the service
    refuses null with 422): the document shows them as not nullable."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_not_null)
