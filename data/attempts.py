"""Failed-login backoff: the seam between the login service and whatever stores attempts.

The login service owns the rule's place in the flow (check before the password is
checked, record a failure, forget them on success), so every interface that logs in
behaves the same; the gateway provides the store and the numbers (how many failures, in
what window, how long a lock grows). Accounts are named by a hash of the normalized email,
so no store ever holds an address.
"""

from __future__ import annotations

import hashlib
from typing import Protocol


def account_key(normalized_email: str) -> str:
    """The name an account's attempts are kept under (never the address itself)."""
    return hashlib.sha256(normalized_email.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginAttempts(Protocol):
    async def check(self, account: str) -> None:
        """Raise ``RateLimited`` (with ``retry_after``) while the account is locked."""

    async def failed(self, account: str) -> None:
        """Record a failed login for the account."""

    async def succeeded(self, account: str) -> None:
        """Forget the account's failures."""


class NoBackoff:
    """Attempts unlimited: for callers outside the gateway (the CLI, service tests)."""

    async def check(self, account: str) -> None:
        return None

    async def failed(self, account: str) -> None:
        return None

    async def succeeded(self, account: str) -> None:
        return None


NO_BACKOFF = NoBackoff()
