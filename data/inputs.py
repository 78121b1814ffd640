"""What a value from outside must be before it reaches SQL.

PostgreSQL refuses integers beyond its 32-bit ``INTEGER`` columns, text with NUL
characters and strings that are not valid UTF-8 (lone surrogates), and it refuses them
with an error, not an empty answer. Services check untrusted values here first, so such
input is ``NotFound`` or ``Invalid`` on every backend instead of an internal error.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MIN_INT = -(2**31)
MAX_INT = 2**31 - 1


def storable_int(value: Any) -> bool:
    """An ``int`` (not a ``bool``) that fits an ``INTEGER`` column."""
    return isinstance(value, int) and not isinstance(value, bool) and MIN_INT <= value <= MAX_INT


def storable_text(value: Any) -> bool:
    """A ``str`` without NUL characters that encodes as UTF-8."""
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable_ids(ids: Iterable[Any]) -> list[Any]:
    """The ids that could name a row; the others name nothing."""
    return [i for i in ids if storable_int(i)]
