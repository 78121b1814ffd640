"""Who is calling: resolved once per request by the gateway and passed to every service."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property


class ActorKind(StrEnum):
    ANONYMOUS = "anonymous"
    USER = "user"
    API_KEY = "api_key"


SCOPES = ("catalog:read", "catalog:write", "orders:read")


@dataclass(frozen=True)
class Actor:
    kind: ActorKind = ActorKind.ANONYMOUS
    user_id: int | None = None
    role: str | None = None
    api_key_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_anonymous(self) -> bool:
        return self.kind is ActorKind.ANONYMOUS

    @property
    def is_staff(self) -> bool:
        """Staff or admin: the roles that see the whole catalog and all orders."""
        return self.kind is ActorKind.USER and self.role in ("staff", "admin")

    @property
    def is_admin(self) -> bool:
        return self.kind is ActorKind.USER and self.role == "admin"

    def has_scope(self, scope: str) -> bool:
        return self.kind is ActorKind.API_KEY and scope in self.scopes

    @cached_property
    def label(self) -> str:
        """A log-safe description of the principal (never a secret); worked out once per
        actor (the access line asks on every request)."""
        if self.kind is ActorKind.USER:
            return f"user:{self.user_id}"
        if self.kind is ActorKind.API_KEY:
            return f"api_key:{self.api_key_id}"
        return "anonymous"


ANONYMOUS = Actor()


def user_actor(user_id: int, role: str) -> Actor:
    return Actor(kind=ActorKind.USER, user_id=user_id, role=role)


def api_key_actor(key_id: int, scopes: frozenset[str] | set[str]) -> Actor:
    return Actor(kind=ActorKind.API_KEY, api_key_id=key_id, scopes=frozenset(scopes))
