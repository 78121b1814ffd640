"""Sign-up, login, refresh with rotation and reuse detection, logout, and turning a
credential (access token or API key) into an ``Actor``."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from data.actor import ANONYMOUS, Actor, api_key_actor, user_actor
from data.attempts import NO_BACKOFF, LoginAttempts, account_key
from data.changes import principal_changed
from data.errors import Unauthenticated
from data.inputs import storable_text
from data.models import RefreshToken, User, utcnow
from data.passwords import verify_password_async
from data.principals import PrincipalCache
from data.services.accounts import create_user, normalize_email
from data.services.api_keys import find_key_by_secret
from data.tokens import ACCESS, REFRESH, Claims, TokenIssuer, TokenPair

if TYPE_CHECKING:
    from data.db import Database

LOGIN_FAILED = "Invalid email or password."


class RefreshTokenReused(Unauthenticated):
    """A spent refresh token came back: its whole login is revoked, and that must stick."""

    commit_changes = True


async def register(
    session: AsyncSession, actor: Actor, *, email: str, password: str, name: str
) -> User:
    """Sign up: always a customer, whatever else the request carried."""
    return await create_user(session, email=email, password=password, name=name, role="customer")


async def _start_login(
    session: AsyncSession, tokens: TokenIssuer, user: User, family: str
) -> TokenPair:
    jti = uuid.uuid4().hex
    session.add(
        RefreshToken(
            jti=jti,
            family=family,
            user_id=user.id,
            expires_at=utcnow() + timedelta(seconds=tokens.refresh_ttl),
        )
    )
    await session.flush()
    return tokens.issue(user_id=user.id, role=user.role, family=family, refresh_jti=jti)


async def login(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    tokens: TokenIssuer,
    attempts: LoginAttempts = NO_BACKOFF,
) -> TokenPair:
    """Tokens for a correct email and password; the same answer for every failure.

    Too many recent failures for the account from the caller's network are
    ``RateLimited`` before the password is checked (``attempts`` knows the network); a
    success forgets them.
    """
    email = normalize_email(email)
    account = account_key(email)
    await attempts.check(account)
    user = (
        await session.scalar(select(User).where(User.email == email))
        if storable_text(email)
        else None
    )
    # The check does the same work with or without a user, so timing tells nothing.
    valid = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        await attempts.failed(account)
        raise Unauthenticated(LOGIN_FAILED)
    await attempts.succeeded(account)
    return await _start_login(session, tokens, user, family=uuid.uuid4().hex)


async def _revoke_family(session: AsyncSession, family: str) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    principal_changed(session, f"login:{family}")


async def refresh(session: AsyncSession, *, refresh_token: str, tokens: TokenIssuer) -> TokenPair:
    """A new pair for an unspent refresh token; a spent one revokes its whole login."""
    claims = tokens.verify(refresh_token, kind=REFRESH)
    row = await session.scalar(
        select(RefreshToken).where(RefreshToken.jti == claims.jti).with_for_update()
    )
    if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
        raise Unauthenticated("The refresh token is invalid or expired.")
    if row.used_at is not None:
        await _revoke_family(session, row.family)
        raise RefreshTokenReused("This refresh token was already used; the login is revoked.")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active:
        raise Unauthenticated("The refresh token is invalid or expired.")
    row.used_at = utcnow()
    return await _start_login(session, tokens, user, family=row.family)


async def logout(session: AsyncSession, *, refresh_token: str, tokens: TokenIssuer) -> None:
    """Ends the login the refresh token belongs to (its access tokens stop working too)."""
    claims = tokens.verify(refresh_token, kind=REFRESH)
    await _revoke_family(session, claims.family)


async def authenticate_access_token(session: AsyncSession, claims: Claims) -> Actor:
    """The user behind a verified access token, if still active and its login not revoked."""
    revoked = exists().where(
        and_(RefreshToken.family == claims.family, RefreshToken.revoked_at.is_not(None))
    )
    row = (
        await session.execute(
            select(User.role, User.is_active, revoked).where(User.id == claims.sub)
        )
    ).first()
    if row is None or not row.is_active or row[2]:
        raise Unauthenticated("The token is invalid or expired.")
    return user_actor(claims.sub, row.role)


async def authenticate_api_key(session: AsyncSession, key: str) -> Actor:
    """The API key's principal; unknown and revoked keys are ``Unauthenticated``."""
    api_key = await find_key_by_secret(session, key)
    now = utcnow()
    # Recording every use would make each read a write; a minute's precision is enough.
    if api_key.last_used_at is None or now - api_key.last_used_at > timedelta(minutes=1):
        api_key.last_used_at = now
        await session.flush()
    return api_key_actor(api_key.id, set(api_key.scopes))


NO_CACHE = PrincipalCache(enabled=False)
# A key's last use is recorded when it is resolved from the database: a remembered key
# is resolved again at least this often, so ``last_used_at`` stays within a minute.
API_KEY_RECHECK_SECONDS = 60.0


# What ``resolve_credentials`` remembers a credential under: the same string sent as the
# other kind of credential is not the same credential.
BEARER, KEY = "bearer:", "key:"


async def resolve_credentials(
    db: Database,
    tokens: TokenIssuer,
    authorization: str | None,
    api_key: str | None,
    principals: PrincipalCache = NO_CACHE,
) -> Actor:
    """The principal behind a credential (anonymous without one), for HTTP and WebSocket.

    ``authorization`` is the ``Authorization`` value (``Bearer <access token>``),
    ``api_key`` the ``X-API-Key`` value; both at once is refused. A credential resolved
    before is answered from ``principals`` without a database round trip.
    """
    if authorization is not None and api_key is not None:
        raise Unauthenticated("Send either a bearer token or an API key, not both.")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Use 'Authorization: Bearer <access token>'.")
        # Remembered by kind too: a key sent as a bearer token is no access token.
        remembered = principals.get(BEARER + token)
        if remembered is not None:
            return remembered
        epoch = principals.epoch
        claims = tokens.verify(token, kind=ACCESS)
        async with db.read() as session:
            actor = await authenticate_access_token(session, claims)
        principals.put(
            BEARER + token,
            actor,
            (f"user:{claims.sub}", f"login:{claims.family}"),
            epoch=epoch,
            expires_at=claims.expires_at.replace(tzinfo=UTC).timestamp(),
        )
        return actor
    if api_key is not None:
        api_key = api_key.strip()
        remembered = principals.get(KEY + api_key)
        if remembered is not None:
            return remembered
        epoch = principals.epoch
        async with db.write() as session:
            actor = await authenticate_api_key(session, api_key)
        principals.put(
            KEY + api_key,
            actor,
            (f"api_key:{actor.api_key_id}",),
            epoch=epoch,
            expires_at=time.time() + API_KEY_RECHECK_SECONDS,
        )
        return actor
    return ANONYMOUS
