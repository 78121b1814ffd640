"""JWT access and refresh tokens (PyJWT), signed HS256 or with a configured key pair.

Verification pins the algorithm, issuer, audience and token type, and requires every
claim: ``alg: none``, another algorithm, a foreign signature, an expired token or a
refresh token presented as an access token all fail with ``Unauthenticated``.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from data.errors import Unauthenticated
from data.inputs import storable_int

REQUIRED_CLAIMS = ["sub", "role", "type", "iat", "exp", "jti", "iss", "aud"]
ACCESS = "access"
REFRESH = "refresh"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "bearer"


@dataclass(frozen=True)
class Claims:
    sub: int
    role: str
    type: str
    jti: str
    family: str
    expires_at: datetime


class TokenIssuer:
    """Signs and verifies the gateway's tokens with one algorithm and key."""

    def __init__(
        self,
        *,
        algorithm: str,
        signing_key: Any,
        verifying_key: Any,
        issuer: str,
        audience: str,
        access_ttl: int = 900,
        refresh_ttl: int = 30 * 86400,
    ) -> None:
        self.algorithm = algorithm
        self.signing_key = signing_key
        self.verifying_key = verifying_key
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _encode(
        self, *, user_id: int, role: str, kind: str, family: str, ttl: int, jti: str
    ) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "role": role,
            "type": kind,
            "iat": now,
            "exp": now + timedelta(seconds=ttl),
            "jti": jti,
            "iss": self.issuer,
            "aud": self.audience,
            "fam": family,
        }
        headers = {"kid": self.key_id} if self.algorithm != "HS256" else None
        return jwt.encode(claims, self.signing_key, algorithm=self.algorithm, headers=headers)

    def issue(self, *, user_id: int, role: str, family: str, refresh_jti: str) -> TokenPair:
        """An access token and the refresh token ``refresh_jti`` of login ``family``."""
        access = self._encode(
            user_id=user_id,
            role=role,
            kind=ACCESS,
            family=family,
            ttl=self.access_ttl,
            jti=uuid.uuid4().hex,
        )
        refresh = self._encode(
            user_id=user_id,
            role=role,
            kind=REFRESH,
            family=family,
            ttl=self.refresh_ttl,
            jti=refresh_jti,
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self.access_ttl)

    def verify(self, token: str, *, kind: str) -> Claims:
        """The token's claims, or ``Unauthenticated`` for anything wrong with it."""
        try:
            claims = jwt.decode(
                token,
                self.verifying_key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
            if claims["type"] != kind:
                raise jwt.InvalidTokenError("wrong token type")
            subject = claims["sub"]
            # A signed but absurd subject ("abc", 2**40) names no user; an id beyond the
            # INTEGER column would otherwise reach SQL and fail there.
            if not (
                isinstance(subject, str)
                and subject.isascii()
                and subject.isdigit()
                and storable_int(int(subject))
            ):
                raise jwt.InvalidTokenError("subject out of range")
            return Claims(
                sub=int(subject),
                role=str(claims["role"]),
                type=claims["type"],
                jti=str(claims["jti"]),
                family=str(claims.get("fam") or claims["jti"]),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC).replace(tzinfo=None),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            raise Unauthenticated("The token is invalid or expired.") from None

    def _public_jwk(self) -> dict[str, Any]:
        algorithm = get_default_algorithms()[self.algorithm]
        jwk: dict[str, Any] = algorithm.to_jwk(self.verifying_key, as_dict=True)
        return jwk

    @property
    def key_id(self) -> str:
        """A stable id for the public key: a digest of its JWK."""
        digest = hashlib.sha256(repr(sorted(self._public_jwk().items())).encode()).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode().rstrip("=")

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK set (empty for HS256: its key is a secret)."""
        if self.algorithm == "HS256":
            return {"keys": []}
        jwk = self._public_jwk()
        jwk.update({"use": "sig", "alg": self.algorithm, "kid": self.key_id})
        return {"keys": [jwk]}
