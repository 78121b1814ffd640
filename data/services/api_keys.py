"""API keys: created, listed and revoked by admins; only a hash is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import SCOPES, Actor
from data.changes import principal_changed
from data.errors import FieldError, Invalid, NotFound, Unauthenticated
from data.inputs import storable_int, storable_text
from data.models import ApiKey, utcnow
from data.pagination import Page, PageRequest, paginate, sort_set
from data.services.guards import require_admin

KEY_PREFIX = "gw"
API_KEY_SORTS = sort_set(created_at=(ApiKey.created_at, ApiKey.id))


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _validate(name: str, scopes: Sequence[str]) -> None:
    errors = []
    if not name.strip() or len(name) > 200 or not storable_text(name):
        errors.append(FieldError(("name",), "between 1 and 200 characters"))
    unknown = sorted(str(s) for s in set(scopes) - set(SCOPES))
    if unknown:
        errors.append(FieldError(("scopes",), f"unknown scopes {unknown}; use {list(SCOPES)}"))
    if errors:
        raise Invalid("Invalid API key.", errors=errors)


async def create_api_key(
    session: AsyncSession, actor: Actor, *, name: str, scopes: Sequence[str]
) -> tuple[ApiKey, str]:
    """A new key and its secret, which is shown this once and stored only as a hash."""
    require_admin(actor)
    _validate(name, scopes)
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(
        name=name.strip(),
        scopes=sorted(set(scopes)),
        prefix=prefix,
        key_hash=_digest(key),
        created_by_id=actor.user_id,
    )
    session.add(api_key)
    await session.flush()
    return api_key, key


async def list_api_keys(session: AsyncSession, actor: Actor, *, page: PageRequest) -> Page[ApiKey]:
    """A page of API keys, newest first (admins)."""
    require_admin(actor)
    return await paginate(
        session, select(ApiKey), scope="api_keys", sort=API_KEY_SORTS["-created_at"], request=page
    )


async def revoke_api_key(session: AsyncSession, actor: Actor, *, key_id: int) -> ApiKey:
    """Revokes a key (admins); revoking twice keeps the first time."""
    require_admin(actor)
    api_key = await session.get(ApiKey, key_id) if storable_int(key_id) else None
    if api_key is None:
        raise NotFound("No such API key.")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        principal_changed(session, f"api_key:{api_key.id}")
        await session.flush()
    return api_key


async def find_key_by_secret(session: AsyncSession, key: str) -> ApiKey:
    """The live key with this secret, or ``Unauthenticated``."""
    kind, _, rest = key.partition("_")
    prefix = rest.partition("_")[0]
    api_key = (
        await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if kind == KEY_PREFIX and prefix
        else None
    )
    if (
        api_key is None
        or api_key.revoked_at is not None
        or not hmac.compare_digest(api_key.key_hash, _digest(key))
    ):
        raise Unauthenticated("The API key is invalid or revoked.")
    return api_key


async def count_api_keys(session: AsyncSession, actor: Actor) -> int:
    """How many API keys there are, revoked ones included (admins)."""
    require_admin(actor)
    return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)
