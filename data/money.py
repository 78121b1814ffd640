"""Money: integer minor units in storage, one currency for the catalog."""

from __future__ import annotations

from datetime import UTC, datetime

CURRENCY = "USD"


def format_amount(cents: int) -> str:
    """Minor units as a decimal string: 1999 -> "19.99"."""
    sign = "-" if cents < 0 else ""
    whole, minor = divmod(abs(cents), 100)
    return f"{sign}{whole}.{minor:02d}"


def as_utc(value: datetime) -> datetime:
    """A stored (naive UTC) timestamp as an aware one, for both interfaces to render."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
