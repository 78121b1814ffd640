"""Who may act at all: the checks every service starts with."""

from __future__ import annotations

from data.actor import Actor
from data.errors import Forbidden, Unauthenticated


def require_principal(actor: Actor) -> None:
    if actor.is_anonymous:
        raise Unauthenticated("Sign in, or send an API key, to do this.")


def require_user(actor: Actor) -> int:
    """The signed-in user's id; API keys are not users."""
    require_principal(actor)
    if actor.user_id is None:
        raise Forbidden("This needs a signed-in user, not an API key.")
    return actor.user_id


def require_staff(actor: Actor) -> None:
    require_principal(actor)
    if not actor.is_staff:
        raise Forbidden("Only staff and admins may do this.")


def require_admin(actor: Actor) -> None:
    require_principal(actor)
    if not actor.is_admin:
        raise Forbidden("Only admins may do this.")
