"""Users: the viewer's own profile, and staff and admin access to everyone's."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import Actor
from data.batching import in_key_order
from data.changes import user_changed
from data.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from data.inputs import storable_ids, storable_int, storable_text
from data.models import ROLES, User
from data.pagination import Page, PageRequest, paginate, sort_set
from data.passwords import hash_password_async, verify_password_async
from data.policy import user_visible
from data.services.accounts import MIN_PASSWORD_LENGTH, normalize_email
from data.services.guards import require_admin, require_staff, require_user

USER_SORTS = sort_set(created_at=(User.created_at, User.id))


async def load_users(session: AsyncSession, actor: Actor, ids: Sequence[int]) -> list[User | None]:
    """Users by id as other objects reach them (review authors, order customers).

    Any user may be met by name this way; ``data.policy`` hides the private fields.
    """
    stmt = select(User).where(User.id.in_(storable_ids(ids)))
    return in_key_order((await session.scalars(stmt)).all(), ids)


async def find_viewer(session: AsyncSession, actor: Actor) -> User:
    """The signed-in user."""
    user_id = require_user(actor)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


async def _email_taken(session: AsyncSession, email: str, other_than: int) -> bool:
    stmt = select(func.count()).where(User.email == email, User.id != other_than)
    return bool(await session.scalar(stmt))


async def update_viewer(
    session: AsyncSession,
    actor: Actor,
    *,
    name: str | None = None,
    email: str | None = None,
    password: str | None = None,
    current_password: str | None = None,
) -> User:
    """Edits the signed-in user's own name, email or password (never the role)."""
    user = await find_viewer(session, actor)
    errors = []
    if name is not None and not (0 < len(name.strip()) <= 200 and storable_text(name)):
        errors.append(FieldError(("name",), "between 1 and 200 characters"))
    if email is not None and ("@" not in email or len(email) > 320 or not storable_text(email)):
        errors.append(FieldError(("email",), "not a valid email address"))
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        errors.append(FieldError(("password",), f"at least {MIN_PASSWORD_LENGTH} characters"))
    if errors:
        raise Invalid("Invalid profile changes.", errors=errors)
    if password is not None:
        if not await verify_password_async(user.password_hash, current_password or ""):
            raise Forbidden("Changing the password needs the current password.")
        user.password_hash = await hash_password_async(password)
    if email is not None:
        email = normalize_email(email)
        # An address another account holds is not taken over, and not refused either:
        # a refusal would tell anyone with an account which addresses are registered.
        # (Confirming a new address by mail would close the gap the unchanged address
        # still leaves in the answer; there is no mail yet.)
        if not await _email_taken(session, email, user.id):
            user.email = email
    renamed = name is not None and name.strip() != user.name
    if name is not None:
        user.name = name.strip()
    user_changed(session, user.id, name=renamed)
    await session.flush()
    return user


async def list_users(session: AsyncSession, actor: Actor, *, page: PageRequest) -> Page[User]:
    """A page of all users, newest first (staff and admins)."""
    require_staff(actor)
    return await paginate(
        session, select(User), scope="users", sort=USER_SORTS["-created_at"], request=page
    )


async def find_user(session: AsyncSession, actor: Actor, *, user_id: int) -> User:
    """A user this actor may see as a user (itself; everyone for staff), else ``NotFound``."""
    user = (
        await session.scalar(select(User).where(user_visible(actor), User.id == user_id))
        if storable_int(user_id)
        else None
    )
    if user is None:
        raise NotFound("No such user.")
    return user


async def update_user(
    session: AsyncSession,
    actor: Actor,
    *,
    user_id: int,
    role: str | None = None,
    is_active: bool | None = None,
    name: str | None = None,
) -> User:
    """Changes a user's role, active flag or name (admins)."""
    user = await find_user(session, actor, user_id=user_id)
    require_admin(actor)
    if role is not None and role not in ROLES:
        raise Invalid("Unknown role.", errors=[FieldError(("role",), f"one of {list(ROLES)}")])
    if name is not None and not (0 < len(name.strip()) <= 200 and storable_text(name)):
        raise Invalid("Invalid name.", errors=[FieldError(("name",), "1 to 200 characters")])
    if user.id == actor.user_id and (role not in (None, "admin") or is_active is False):
        raise Conflict("Admins cannot demote or deactivate themselves.")
    if role is not None:
        user.role = role
    if is_active is not None:
        user.is_active = is_active
    renamed = name is not None and name.strip() != user.name
    if name is not None:
        user.name = name.strip()
    user_changed(session, user.id, name=renamed)
    await session.flush()
    return user


async def load_visible_users(
    session: AsyncSession, actor: Actor, ids: Sequence[int]
) -> list[User | None]:
    """Users by id that this actor may see as users (``node`` lookups)."""
    stmt = select(User).where(user_visible(actor), User.id.in_(storable_ids(ids)))
    return in_key_order((await session.scalars(stmt)).all(), ids)


async def count_users(session: AsyncSession, actor: Actor) -> int:
    """How many users there are (staff and admins)."""
    require_staff(actor)
    return int(await session.scalar(select(func.count()).select_from(User)) or 0)
