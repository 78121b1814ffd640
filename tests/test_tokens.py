"""Every token attack gets UNAUTHENTICATED, in REST (401 + WWW-Authenticate) and GraphQL."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from tests.conftest import Gateway, make_settings, running_gateway
from tests.principals import World, login


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forge(claims: dict[str, Any], world: World, **changes: Any) -> str:
    return jwt.encode(
        {**claims, **changes}, world.gateway.app.state.tokens.signing_key, algorithm="HS256"
    )


def _unsigned(token: str) -> str:
    header, payload, _ = token.split(".")
    return f"{header}.{payload}."


def _alg_none(claims: dict[str, Any]) -> str:
    return (
        f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}."
        f"{_b64(json.dumps(claims).encode())}."
    )


def _access(world: World, who: str = "customer") -> str:
    return world.headers[who]["Authorization"].removeprefix("Bearer ")


PAST = datetime.now(UTC) - timedelta(hours=1)
ATTACKS: dict[str, Callable[[World], str]] = {
    "garbage": lambda w: "not-a-jwt",
    "missing_signature": lambda w: _unsigned(_access(w)),
    "wrong_signature": lambda w: jwt.encode(
        _claims(_access(w)), "another-secret-" + "y" * 40, algorithm="HS256"
    ),
    "alg_none": lambda w: _alg_none(_claims(_access(w))),
    "other_algorithm": lambda w: jwt.encode(
        _claims(_access(w)), w.gateway.app.state.tokens.signing_key, algorithm="HS384"
    ),
    "refresh_as_access": lambda w: w.refresh_tokens["customer"],
    "expired": lambda w: _forge(_claims(_access(w)), w, exp=PAST, iat=PAST - timedelta(1)),
    "wrong_issuer": lambda w: _forge(_claims(_access(w)), w, iss="someone-else"),
    "wrong_audience": lambda w: _forge(_claims(_access(w)), w, aud="another-api"),
    "missing_jti": lambda w: jwt.encode(
        {k: v for k, v in _claims(_access(w)).items() if k != "jti"},
        w.gateway.app.state.tokens.signing_key,
        algorithm="HS256",
    ),
    "deleted_user": lambda w: _forge(_claims(_access(w)), w, sub="999999"),
    # Signed, but a subject no INTEGER id can be: once a 500 on PostgreSQL.
    "subject_out_of_range": lambda w: _forge(_claims(_access(w)), w, sub=str(2**40)),
    "subject_not_a_number": lambda w: _forge(_claims(_access(w)), w, sub="abc"),
    "subject_negative_huge": lambda w: _forge(_claims(_access(w)), w, sub="-" + "9" * 30),
}


async def assert_unauthenticated(gateway: Gateway, headers: dict[str, str]) -> None:
    response = await gateway.client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["code"] == "UNAUTHENTICATED"
    assert response.headers["www-authenticate"].startswith("Bearer")
    # A bad credential is never downgraded to anonymous, even on public routes.
    assert (await gateway.client.get("/api/v2/products", headers=headers)).status_code == 401
    body = await gateway.graphql(
        "{ viewer { id } products(first: 1) { totalCount } }", headers=headers
    )
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_the_valid_token_works(world: World) -> None:
    response = await world.gateway.client.get("/api/v1/users/me", headers=world.headers["customer"])
    assert response.status_code == 200
    claims = _claims(_access(world))
    assert {"sub", "role", "type", "iat", "exp", "jti", "iss", "aud"} <= claims.keys()
    assert claims["type"] == "access"
    assert claims["role"] == "customer"


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_token_attacks_are_unauthenticated(world: World, attack: str) -> None:
    token = ATTACKS[attack](world)
    await assert_unauthenticated(world.gateway, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
async def test_malformed_authorization_headers(world: World, header: str) -> None:
    await assert_unauthenticated(world.gateway, {"Authorization": header})


async def test_unknown_api_key(world: World) -> None:
    await assert_unauthenticated(world.gateway, {"X-API-Key": "gw_00000000_nope"})


async def test_deactivated_user_is_unauthenticated(world: World) -> None:
    client = world.gateway.client
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": "victim@example.com", "password": "victim-password", "name": "Vic"},
    )
    victim = response.json()["id"]
    tokens = await login(world.gateway, "victim@example.com", "victim-password")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200

    response = await client.patch(
        f"/api/v1/users/{victim}", json={"is_active": False}, headers=world.headers["admin"]
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    await assert_unauthenticated(world.gateway, headers)
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401
    relogin = await client.post(
        "/api/v1/auth/token", data={"username": "victim@example.com", "password": "victim-password"}
    )
    assert relogin.status_code == 401


async def test_refresh_rotates_and_reuse_revokes_the_login(world: World) -> None:
    client = world.gateway.client
    first = await login(world.gateway, "staff@example.com", "demo-password")
    second = (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    ).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "bearer"
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200

    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    # Every token of that login is dead now: the rotated refresh token and its access token.
    third = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert third.status_code == 401
    await assert_unauthenticated(world.gateway, headers)
    # Another login of the same user is untouched.
    assert (await client.get("/api/v1/users/me", headers=world.headers["staff"])).status_code == 200


async def test_graphql_refresh_reuse_is_detected_too(world: World) -> None:
    gateway = world.gateway
    body = await gateway.graphql(
        'mutation { login(email: "admin@example.com", password: "demo-password") { refreshToken } }'
    )
    refresh = body["data"]["login"]["refreshToken"]
    mutation = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
    assert (await gateway.graphql(mutation, {"t": refresh}))["data"]["refreshToken"]
    again = await gateway.graphql(mutation, {"t": refresh})
    assert again["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_logout_ends_the_login(world: World) -> None:
    client = world.gateway.client
    tokens = await login(world.gateway, "customer@example.com", "demo-password")
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.post(
        "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    await assert_unauthenticated(world.gateway, headers)
    response = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 401


async def test_revoked_api_key_is_unauthenticated(world: World) -> None:
    client, admin = world.gateway.client, world.headers["admin"]
    created = (
        await client.post(
            "/api/v1/api-keys", json={"name": "tmp", "scopes": ["catalog:read"]}, headers=admin
        )
    ).json()
    headers = {"X-API-Key": created["key"]}
    assert (await client.get("/api/v1/products", headers=headers)).status_code == 200
    listed = (await client.get("/api/v1/api-keys?limit=100", headers=admin)).json()["data"]
    [row] = [k for k in listed if k["id"] == created["id"]]
    assert row["last_used_at"] is not None
    assert "key" not in row
    assert created["key"].startswith(f"gw_{row['prefix']}_")

    assert (
        await client.delete(f"/api/v1/api-keys/{created['id']}", headers=admin)
    ).status_code == 204
    await assert_unauthenticated(world.gateway, headers)


async def test_api_keys_are_stored_as_hashes_only(world: World) -> None:
    client, admin = world.gateway.client, world.headers["admin"]
    created = (
        await client.post(
            "/api/v1/api-keys", json={"name": "hash", "scopes": ["orders:read"]}, headers=admin
        )
    ).json()
    async with world.gateway.app.state.db.read() as session:
        row = (
            (
                await session.execute(
                    __import__("sqlalchemy").text("SELECT * FROM api_keys WHERE id = :id"),
                    {"id": created["id"]},
                )
            )
            .mappings()
            .one()
        )
    assert created["key"] not in {str(v) for v in row.values()}
    assert row["key_hash"] == hashlib.sha256(created["key"].encode()).hexdigest()


def _rsa_pems() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_rs256_serves_jwks_and_refuses_hs256_confusion(fresh: Any, tmp_path: Path) -> None:
    private, public = _rsa_pems()
    settings = make_settings(
        fresh.url, tmp_path, jwt_algorithm="RS256", jwt_private_key=private, jwt_public_key=public
    )
    async with running_gateway(settings, fresh.backend) as gateway:
        client = gateway.client
        await client.post(
            "/api/v1/auth/register",
            json={"email": "rsa@example.com", "password": "rsa-password", "name": "Rita"},
        )
        tokens = await login(gateway, "rsa@example.com", "rsa-password")
        jwks = (await client.get("/.well-known/jwks.json")).json()
        [jwk] = jwks["keys"]
        assert jwk["kty"] == "RSA"
        assert jwk["alg"] == "RS256"
        assert jwt.get_unverified_header(tokens["access_token"])["kid"] == jwk["kid"]
        claims = jwt.decode(
            tokens["access_token"],
            jwt.PyJWK(jwk).key,
            algorithms=["RS256"],
            audience=settings.jwt_audience,
        )
        assert claims["type"] == "access"
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await client.get("/api/v1/users/me", headers=headers)).status_code == 200

        # The classic confusion: HS256 signed with the public key as the HMAC secret.
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(_claims(tokens["access_token"])).encode())
        signature = _b64(
            hmac.new(public.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        )
        await assert_unauthenticated(
            gateway, {"Authorization": f"Bearer {header}.{payload}.{signature}"}
        )


@pytest.mark.parametrize("secret", [None, "changeme", "short-secret"])
def test_production_refuses_placeholder_secrets(secret: str | None, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        make_settings(
            "sqlite+aiosqlite:///x.db", tmp_path, environment="production", jwt_secret=secret
        )


def test_production_accepts_a_real_secret(tmp_path: Path) -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///x.db",
        tmp_path,
        environment="production",
        jwt_secret="a" * 48,
        trusted_hosts="api.example.com",
    )
    assert settings.is_production
