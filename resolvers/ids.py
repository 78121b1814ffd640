"""Relay global ids: base64 of ``Type:databaseId``."""

from __future__ import annotations

import base64
import binascii

from data.errors import FieldError, Invalid


def to_global_id(type_name: str, database_id: int) -> str:
    return base64.b64encode(f"{type_name}:{database_id}".encode()).decode()


def from_global_id(global_id: str) -> tuple[str, int]:
    """``(type name, database id)``, or ``Invalid`` for anything that is not a global id."""
    try:
        type_name, _, raw_id = base64.b64decode(global_id, validate=True).decode().partition(":")
        if not type_name or not raw_id.isdigit():
            raise ValueError(global_id)
        return type_name, int(raw_id)
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Invalid(
            f"{global_id!r} is not a valid global id.",
            errors=[FieldError(("id",), "not a global id")],
        ) from None


def database_id_of(type_name: str, value: str) -> int:
    """A ``type_name`` global id, or a bare database id, as a database id."""
    if value.isdigit():
        return int(value)
    found_type, database_id = from_global_id(value)
    if found_type != type_name:
        raise Invalid(f"{value!r} is not the id of a {type_name}.")
    return database_id
