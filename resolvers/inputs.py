"""Service errors located in GraphQL terms: ``["input", "items", 2, "productId"]``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from data.errors import FieldError, Invalid

Loc = tuple[str | int, ...]


def camel(name: str | int) -> str | int:
    if isinstance(name, int):
        return name
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@contextmanager
def located(prefix: Loc = ("input",)) -> Iterator[None]:
    """Renames the service's field names (``product_id``) to the schema's (``productId``)
    and places them under the argument that carried them."""
    try:
        yield
    except Invalid as exc:
        errors = [FieldError((*prefix, *map(camel, e.loc)), e.msg) for e in exc.errors]
        raise type(exc)(exc.detail, errors=errors) from None
