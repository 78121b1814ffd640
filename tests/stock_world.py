"""A live gateway on PostgreSQL and Redis, and a client generated from its ``/openapi.json``.

The stock-client tests talk to the server only as users' clients do: over the network,
with the clients as published (``gql``, and what ``openapi-python-client`` generates).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
from openapi_python_client.strings import snake_case

from data.db import Database
from data.migrate import upgrade_async
from data.seed import seed
from tests.conftest import REDIS_URL, PostgresDatabases, require_postgres
from tests.event_world import require_redis
from tests.serving import Served, serving

PACKAGE = "gateway_stock_client"


async def seeded_postgres(pg_databases: PostgresDatabases) -> str:
    """A migrated PostgreSQL database of this module's own, with the demo accounts."""
    await require_postgres()
    await require_redis()
    url = await pg_databases.create()
    await upgrade_async(url)
    db = Database.from_url(url)
    try:
        async with db.write() as session:
            await seed(session, scale=60, demo=True)
    finally:
        await db.dispose()
    return url


@contextmanager
def live_gateway(url: str, tmp_path: Path) -> Iterator[Served]:
    """``gateway serve`` on ``url`` and the run's Redis (its keys under the run's prefix)."""
    env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "JWT_SECRET": "stock-clients-" + "s" * 40}
    with serving(["serve"], tmp_path, env) as served:
        yield served


@dataclass
class Generated:
    """The package ``openapi-python-client`` wrote, and the document it was written from."""

    package: ModuleType
    document: dict[str, Any]
    output: str

    def endpoint(self, method: str, path: str) -> ModuleType:
        """The generated module of the operation at ``method path`` (found by operationId)."""
        operation_id = self.document["paths"][path][method]["operationId"]
        wanted = snake_case(operation_id)
        api = importlib.import_module(f"{PACKAGE}.api")
        for info in pkgutil.walk_packages(api.__path__, f"{PACKAGE}.api."):
            if info.name.rsplit(".", 1)[-1] == wanted:
                return importlib.import_module(info.name)
        raise AssertionError(f"no generated module for {method.upper()} {path} ({wanted})")

    def client(self, base_url: str, token: str | None = None) -> Any:
        """The generated ``Client`` (or ``AuthenticatedClient``), strict about statuses.

        An answer whose status the document does not list raises ``UnexpectedStatus``: a
        status the client meets but the document does not know fails the test.
        """
        module = importlib.import_module(f"{PACKAGE}.client")
        if token is None:
            return module.Client(base_url=base_url, raise_on_unexpected_status=True)
        return module.AuthenticatedClient(
            base_url=base_url, token=token, raise_on_unexpected_status=True
        )


@contextmanager
def generated_client(base_url: str, tmp_path: Path) -> Iterator[Generated]:
    """Generates a client from the live ``/openapi.json`` into ``tmp_path`` and imports it."""
    document = httpx.get(base_url + "/openapi.json", timeout=30).json()
    spec = tmp_path / "openapi.json"
    spec.write_bytes(orjson.dumps(document))
    # The generator formats its output with ruff, which it looks for on PATH.
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [
            str(Path(bin_dir) / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield Generated(importlib.import_module(PACKAGE), document, output)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [
            name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")
        ]:
            del sys.modules[name]
