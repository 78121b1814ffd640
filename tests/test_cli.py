"""The ``gateway`` command, run as users run it: a subprocess with ``DATABASE_URL`` set."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from data.db import Database
from data.models import Base, Product, User
from data.passwords import verify_password
from resolvers.schema import schema_sdl
from tests.conftest import PostgresDatabases, new_database_url

ROOT = Path(__file__).resolve().parent.parent


async def gateway_cli(
    *args: str, url: str | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_READ_URL")}
    env.update(ENVIRONMENT="development", DATA_DIR=str(cwd / "var"))
    if url is not None:
        env["DATABASE_URL"] = url
    # cwd is a directory of the test's own, so no developer's .env file is read.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, ordered by primary key."""
    db = Database.from_url(url)
    try:
        async with db.read() as session:
            return {
                table.name: [
                    tuple(row)
                    for row in (
                        await session.execute(table.select().order_by(*table.primary_key.columns))
                    ).all()
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        await db.dispose()


async def test_seed_is_deterministic(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    dumps = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        url = await new_database_url(backend, tmp_path / run, pg_databases)
        result = await gateway_cli("seed", "--scale", "50", url=url, cwd=tmp_path / run)
        assert result.returncode == 0, result.stderr
        assert "seeded" in result.stdout
        dumps.append(await dump(url))
    first, second = dumps
    assert len(first["products"]) == 50
    assert all(first[name] for name in ("users", "categories", "reviews", "orders", "order_items"))
    assert first == second


async def test_seed_refuses_a_database_with_data(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}"
    assert (await gateway_cli("seed", "--scale", "50", url=url, cwd=tmp_path)).returncode == 0
    before = await dump(url)
    again = await gateway_cli("seed", "--scale", "50", url=url, cwd=tmp_path)
    assert again.returncode != 0
    assert "already has data" in again.stderr
    assert await dump(url) == before


async def test_seed_max_reviews_sets_reviews_per_product(tmp_path: Path) -> None:
    counts = {}
    for most in ("0", "5", "10"):
        (tmp_path / most).mkdir()
        url = f"sqlite+aiosqlite:///{tmp_path / most / 'gw.sqlite3'}"
        done = await gateway_cli(
            "seed", "--scale", "40", "--max-reviews", most, url=url, cwd=tmp_path / most
        )
        assert done.returncode == 0, done.stderr
        rows = await dump(url)
        counts[most] = len(rows["reviews"])
        per_product: dict[int, int] = {}
        for review in rows["reviews"]:
            per_product[review[1]] = per_product.get(review[1], 0) + 1
        assert max(per_product.values(), default=0) <= int(most)
    assert counts["0"] == 0
    assert counts["5"] < counts["10"]


async def test_create_user_stores_an_argon2_hash(
    backend: str, tmp_path: Path, pg_databases: PostgresDatabases
) -> None:
    url = await new_database_url(backend, tmp_path, pg_databases)
    result = await gateway_cli(
        "create-user",
        "--email",
        "Root@Example.com",
        "--password",
        "a-long-enough-password",
        "--role",
        "admin",
        "--name",
        "Root",
        url=url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    db = Database.from_url(url)
    try:
        async with db.read() as session:
            [user] = (await session.scalars(select(User))).all()
            assert not (await session.scalars(select(Product))).all()
    finally:
        await db.dispose()
    assert (user.email, user.name, user.role, user.is_active) == (
        "root@example.com",
        "Root",
        "admin",
        True,
    )
    assert user.password_hash.startswith("$argon2id$")
    assert "a-long-enough-password" not in user.password_hash
    assert verify_password(user.password_hash, "a-long-enough-password")
    assert not verify_password(user.password_hash, "wrong-password")
    taken = await gateway_cli(
        "create-user",
        "--email",
        "root@example.com",
        "--password",
        "another-long-password",
        url=url,
        cwd=tmp_path,
    )
    assert taken.returncode != 0
    assert "already exists" in taken.stderr


async def test_export_schema_check_passes_with_the_committed_file(tmp_path: Path) -> None:
    result = await gateway_cli(
        "export-schema", "--check", "--output", str(ROOT / "schema.graphql"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


async def test_export_schema_writes_and_check_catches_a_difference(tmp_path: Path) -> None:
    output = tmp_path / "schema.graphql"
    written = await gateway_cli("export-schema", "--output", str(output), cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    assert output.read_bytes() == schema_sdl().encode()
    output.write_text(schema_sdl() + "\n")
    stale = await gateway_cli("export-schema", "--check", "--output", str(output), cwd=tmp_path)
    assert stale.returncode != 0
    assert "differs" in stale.stderr
