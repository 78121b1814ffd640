"""Money: integer minor units in storage, one currency for the catalog."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from data.errors import FieldError, InvalidInput

CURRENCY = "USD"
_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?", re.ASCII)


def format_amount(cents: int) -> str:
    """Minor units as a decimal string: 1999 -> "19.99"."""
    sign = "-" if cents < 0 else ""
    whole, minor = divmod(abs(cents), 100)
    return f"{sign}{whole}.{minor:02d}"


def as_utc(value: datetime) -> datetime:
    """A stored (naive UTC) timestamp as an aware one, for both interfaces to render."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_money(amount: object, currency: object) -> int:
    """Money input (``{"amount": "19.99", "currency": "USD"}``) as minor units; a
    non-negative amount with at most two decimals that fits a 32-bit column, in the
    catalog's currency. ``ValueError`` names the part that is wrong."""
    if currency != CURRENCY:
        raise ValueError("currency")
    if not isinstance(amount, str) or not _AMOUNT.fullmatch(amount):
        raise ValueError("amount")
    whole, _, minor = amount.partition(".")
    cents = int(whole) * 100 + int(minor.ljust(2, "0") or 0)
    if cents > 2**31 - 1:
        raise ValueError("amount")
    return cents


def cents_of(amount: object, currency: object, *, field: str = "price") -> int:
    """``parse_money`` for services and adapters: bad input is ``InvalidInput`` located at
    ``(field, "amount")`` or ``(field, "currency")``."""
    try:
        return parse_money(amount, currency)
    except ValueError as exc:
        part = str(exc)
        msg = (
            f"must be {CURRENCY}"
            if part == "currency"
            else 'a non-negative decimal string with at most two decimals, e.g. "19.99"'
        )
        raise InvalidInput("Invalid money.", errors=[FieldError((field, part), msg)]) from None
