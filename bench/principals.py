"""Who the bench reads and writes as: a customer, a staff member and a partner's API key.

Made the way an operator makes them: users with the gateway's own ``create-user``
command, tokens from ``POST /api/v1/auth/token``, the key from ``POST /api/v1/api-keys``
as an admin. A database a ``--keep`` run left already has the users: they are logged in.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from bench.harness import ROOT, fetch

PASSWORD = "bench-password-not-secret"
USERS = {
    "customer": "bench-customer@example.com",
    "staff": "bench-staff@example.com",
    "admin": "bench-admin@example.com",
}


@dataclass(frozen=True)
class Principals:
    customer: dict[str, str]  # Authorization: Bearer ...
    staff: dict[str, str]
    key: dict[str, str]  # X-API-Key: ... (scope catalog:read)


def create_users(db_url: str) -> None:
    """``gateway create-user`` for each role (an existing user is left as it is)."""
    for role, email in USERS.items():
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "create-user",
                "--email",
                email,
                "--password",
                PASSWORD,
                "--role",
                role,
                "--name",
                f"Bench {role.title()}",
            ],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": db_url},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 and "exist" not in (done.stdout + done.stderr).lower():
            raise SystemExit(
                f"bench: gateway create-user {role} failed:\n{done.stdout}{done.stderr}"
            )


def _bearer(base: str, email: str) -> dict[str, str]:
    answer = fetch(
        base, "POST", "/api/v1/auth/token", form={"username": email, "password": PASSWORD}
    )
    if answer.status != 200:
        raise SystemExit(f"bench: login of {email} answered {answer.status}: {answer.body[:300]!r}")
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def sign_in(base: str) -> Principals:
    """Tokens for the customer and the staff member, and a new catalog:read key."""
    admin = _bearer(base, USERS["admin"])
    answer = fetch(
        base,
        "POST",
        "/api/v1/api-keys",
        {"name": "bench partner", "scopes": ["catalog:read"]},
        headers=tuple(admin.items()),
    )
    if answer.status != 201:
        raise SystemExit(
            f"bench: creating an API key answered {answer.status}: {answer.body[:300]!r}"
        )
    return Principals(
        _bearer(base, USERS["customer"]),
        _bearer(base, USERS["staff"]),
        {"X-API-Key": answer.json()["key"]},
    )
