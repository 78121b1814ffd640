"""Accounts: creating users (sign-up and the CLI)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.errors import Conflict, FieldError, Invalid
from data.inputs import storable_text
from data.models import ROLES, User
from data.passwords import hash_password_async

MIN_PASSWORD_LENGTH = 8


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _validate(email: str, password: str, name: str, role: str) -> None:
    errors = []
    local, _, domain = email.partition("@")
    if (
        not local
        or "." not in domain
        or len(email) > 320
        or " " in email
        or not storable_text(email)
    ):
        errors.append(FieldError(("email",), "not a valid email address"))
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(FieldError(("password",), f"at least {MIN_PASSWORD_LENGTH} characters"))
    if not name.strip() or len(name) > 200 or not storable_text(name):
        errors.append(FieldError(("name",), "between 1 and 200 characters"))
    if role not in ROLES:
        errors.append(FieldError(("role",), f"one of {', '.join(ROLES)}"))
    if errors:
        raise Invalid("Invalid account details.", errors=errors)


async def create_user(
    session: AsyncSession, *, email: str, password: str, name: str, role: str = "customer"
) -> User:
    """A new user; ``Conflict`` if the email is taken. Callers decide who may pick ``role``."""
    email = normalize_email(email)
    _validate(email, password, name, role)
    taken = await session.scalar(select(func.count()).where(User.email == email))
    if taken:
        raise Conflict("An account with this email already exists.")
    user = User(
        email=email, name=name.strip(), role=role, password_hash=await hash_password_async(password)
    )
    session.add(user)
    await session.flush()
    return user
