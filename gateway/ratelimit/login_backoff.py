"""The failed-login backoff, per account and client network, with an account-wide brake.

A lock per account alone let anyone who knew an address keep its owner out: five wrong
passwords locked the account for everyone, and one more each time a lock ended kept it
locked. So failures lock an account only for the network they come from (an IPv4 /24,
an IPv6 /64: one household, one office, one phone's prefix), as ``LOGIN_BACKOFF_*``
says; the owner's own network is untouched by a stranger's failures. Guessing spread
over many networks is met by an account-wide count that never locks: from
``LOGIN_SLOWDOWN_FAILURES`` failures in the window on, every login for the account is
held ``LOGIN_SLOWDOWN_SECONDS`` before its password is checked (a bounded delay), on top
of the per-address ``auth`` bucket. A success forgets its own network's failures only.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

from starlette.types import Scope

from data.attempts import LoginAttempts
from gateway.ratelimit.buckets import Store


def client_network(address: str) -> str:
    """The network ``address`` belongs to for the backoff: its /24 or /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # not an address (a test client, a unix socket): as given
    prefix = 24 if ip.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


class ClientAttempts:
    """``LoginAttempts`` for one request: locks per (account, network), a brake per account."""

    def __init__(
        self, store: Store, network: str, slowdown_failures: int, slowdown_seconds: float
    ) -> None:
        self.store = store
        self.network = network
        self.slowdown_failures = slowdown_failures
        self.slowdown_seconds = slowdown_seconds

    def _here(self, account: str) -> str:
        return f"{account}@{self.network}"

    async def check(self, account: str) -> None:
        await self.store.check(self._here(account))
        if await self.store.failures(account) >= self.slowdown_failures:
            await asyncio.sleep(self.slowdown_seconds)

    async def failed(self, account: str) -> None:
        await self.store.failed(self._here(account))
        await self.store.count_failure(account)

    async def succeeded(self, account: str) -> None:
        # The account-wide count stays: a success on one network says nothing of others.
        await self.store.succeeded(self._here(account))


def attempts_for(
    store: Store,
    address_of: Callable[[Scope], str],
    slowdown_failures: int,
    slowdown_seconds: float,
) -> Callable[[Scope], LoginAttempts]:
    """What REST and GraphQL call for the login attempts of a request."""

    def bound(scope: Scope) -> LoginAttempts:
        return ClientAttempts(
            store, client_network(address_of(scope)), slowdown_failures, slowdown_seconds
        )

    return bound
