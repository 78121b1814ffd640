"""Production settings that protect the gateway: trusted hosts, the metrics token, settings
errors without secrets, and an email change that does not reveal who is registered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.settings import load_settings
from tests.conftest import SeededDatabase, make_settings, running_gateway
from tests.principals import World, login

SECRET_VALUE = "short-SECRET-value-42"


def test_production_refuses_to_start_without_trusted_hosts(tmp_path: Path) -> None:
    for hosts in (None, "*", "api.example.com,*"):
        extra = {} if hosts is None else {"trusted_hosts": hosts}
        with pytest.raises(ValidationError, match="TRUSTED_HOSTS"):
            make_settings("sqlite+aiosqlite:///x.db", tmp_path, environment="production", **extra)
    settings = make_settings(
        "sqlite+aiosqlite:///x.db",
        tmp_path,
        environment="production",
        trusted_hosts="api.example.com",
    )
    assert settings.trusted_hosts == ["api.example.com"]


async def test_a_forged_host_never_reaches_link_headers(
    seeded: SeededDatabase, tmp_path: Path
) -> None:
    settings = make_settings(
        seeded.url, tmp_path, environment="production", trusted_hosts="testserver"
    )
    async with running_gateway(settings, seeded.backend) as gateway:
        page = await gateway.client.get("/api/v1/products", params={"limit": 2})
        assert page.status_code == 200
        assert "testserver" in page.headers["link"]
        forged = await gateway.client.get(
            "/api/v1/products", params={"limit": 2}, headers={"Host": "evil.example"}
        )
        assert forged.status_code == 400
        assert "evil.example" not in forged.headers.get("link", "")


def test_settings_errors_name_the_setting_not_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("JWT_SECRET", SECRET_VALUE)
    monkeypatch.setenv("TRUSTED_HOSTS", "api.example.com")
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert "JWT_SECRET" in str(exc.value)
    assert SECRET_VALUE not in str(exc.value)
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("ACCESS_TOKEN_TTL", SECRET_VALUE)  # a type error echoes its input
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert "ACCESS_TOKEN_TTL" in str(exc.value)
    assert SECRET_VALUE not in str(exc.value)


def test_the_redis_timeout_is_still_read_by_its_old_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CACHE_REDIS_TIMEOUT_SECONDS", "3")
    assert load_settings().redis_timeout_seconds == 3.0
    monkeypatch.setenv("REDIS_TIMEOUT_SECONDS", "4")
    assert load_settings().redis_timeout_seconds == 4.0  # the new name wins
    monkeypatch.setenv("REDIS_TIMEOUT_SECONDS", "-1")
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert "REDIS_TIMEOUT_SECONDS" in str(exc.value).upper()


def test_the_cli_reports_a_bad_secret_without_its_value(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "JWT_"))
    }
    env.update(
        ENVIRONMENT="production",
        JWT_SECRET=SECRET_VALUE,
        TRUSTED_HOSTS="a.example",
        DATA_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "JWT_SECRET" in output
    assert SECRET_VALUE not in output
    assert "Traceback" not in output


async def test_metrics_behind_a_token(seeded: SeededDatabase, tmp_path: Path) -> None:
    token = "metrics-token-" + "m" * 20
    settings = make_settings(seeded.url, tmp_path, metrics_token=token)
    async with running_gateway(settings, seeded.backend) as gateway:
        missing = await gateway.client.get("/metrics")
        assert missing.status_code == 401
        assert missing.json()["code"] == "UNAUTHENTICATED"
        wrong = await gateway.client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await gateway.client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200
        assert "gateway" in right.text


async def test_email_change_does_not_reveal_a_registered_address(world: World) -> None:
    client = world.gateway.client
    shapes = []
    for n, target in enumerate(("customer@example.com", "nobody-yet@example.com")):
        email = f"probe{n}@example.com"
        await client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": "probe-password", "name": "Probe"},
        )
        tokens = await login(world.gateway, email, "probe-password")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        rest = await client.patch("/api/v1/users/me", json={"email": target}, headers=headers)
        assert rest.status_code == 200, rest.text
        graphql = await world.gateway.graphql(
            "mutation($e: String!) { updateViewer(input: {email: $e}) { name } }",
            {"e": target},
            headers=headers,
        )
        assert "errors" not in graphql
        shapes.append((rest.status_code, sorted(rest.json()), graphql))
    # A taken and a free address get the same answer in both interfaces.
    assert shapes[0] == shapes[1]
    # The taken address still belongs to its owner.
    me = await client.get("/api/v1/users/me", headers=world.headers["customer"])
    assert me.json()["email"] == "customer@example.com"
