"""Schemathesis, as users run it, against a live gateway on PostgreSQL and Redis.

The REST document is checked with every check (``--checks all``): no 5xx, every status,
content type, header and body as documented (errors as ``application/problem+json``),
``Allow`` on 405s, the stateful phase over the document's links, and schema-valid requests
accepted (``tests/schemathesis_hooks.py`` names the refusals no schema can foresee). It
runs as a staff user and anonymously. GraphQL runs in schemathesis' GraphQL mode: no 5xx
and no ``INTERNAL`` error (``graphql_never_internal`` in the hooks).

Deterministic (``--generation-deterministic``) and bounded (``-n``) to keep CI to minutes;
one worker (hypothesis describes filters with ``ast.parse``, which CPython 3.11 breaks
when threads parse at once). A failure prints schemathesis' report with a ``curl`` line
for each case.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, PostgresDatabases, require_postgres
from tests.serving import Served, serving

ROOT = Path(__file__).resolve().parent.parent
ST = Path(sys.executable).with_name("st")
RUN_TIMEOUT = 900


def _gateway_command(args: list[str], env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        check=True,
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A served gateway over a migrated database with the demo users, and Redis."""
    import asyncio

    async def database() -> tuple[PostgresDatabases, str]:
        await require_postgres()
        databases = PostgresDatabases()
        return databases, await databases.create()

    databases, url = asyncio.run(database())
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": REDIS_URL,
        "JWT_SECRET": "schemathesis-" + "x" * 40,
        "ACCESS_TOKEN_TTL": "3600",
    }  # outlives the run
    try:
        _gateway_command(["migrate"], env)
        _gateway_command(["seed", "--scale", "60", "--demo"], env)
        with serving(["serve"], tmp_path_factory.mktemp("st"), env) as served:
            yield served
    finally:
        asyncio.run(databases.drop_all())


def _token(served: Served, email: str) -> str:
    response = httpx.post(
        f"{served.url}/api/v1/auth/token", data={"username": email, "password": "demo-password"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def schemathesis(location: str, *args: str, tmp_path: Path) -> None:
    """``st run location args``; fails the test with schemathesis' report unless clean."""
    command = [
        str(ST),
        "run",
        location,
        "--generation-deterministic",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        *args,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"}
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stdout[-20_000:] + result.stderr[-5_000:]


# Every check except the stock positive_data_acceptance, which the hooks' accepts_valid_data
# stands in for.
REST_CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


def test_rest_as_staff_is_what_the_document_says(live: Served, tmp_path: Path) -> None:
    token = _token(live, "staff@example.com")
    schemathesis(
        f"{live.url}/openapi.json",
        *REST_CHECKS,
        "-n",
        "3",
        "-H",
        f"Authorization: Bearer {token}",
        tmp_path=tmp_path,
    )


def test_rest_anonymously_is_what_the_document_says(live: Served, tmp_path: Path) -> None:
    schemathesis(
        f"{live.url}/openapi.json",
        *REST_CHECKS,
        "-n",
        "3",
        "--phases",
        "examples,fuzzing",
        tmp_path=tmp_path,
    )


def test_graphql_never_answers_5xx(live: Served, tmp_path: Path) -> None:
    token = _token(live, "staff@example.com")
    schemathesis(
        f"{live.url}/graphql",
        "--checks",
        "graphql_never_internal",
        "-n",
        "5",
        "-H",
        f"Authorization: Bearer {token}",
        tmp_path=tmp_path,
    )
