"""The Node packages some tests drive: ``tests/node/package.json`` with its committed
``package-lock.json``, installed by ``npm ci --prefix tests/node`` (``.ci/run`` does it
first; the ``node_packages`` fixture does it when the installed packages are missing or
not the locked versions, so ``./dev test`` works on a fresh machine with Node).

Import ``node_packages_fixture`` into a test module to use the fixture. Without Node (or
npm, when an install is needed) the tests that use it skip, and fail when
``GATEWAY_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

NODE_DIR = Path(__file__).resolve().parent / "node"
INSTALL_TIMEOUT = 300


def _unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)


def installed_as_locked(node_dir: Path = NODE_DIR) -> bool:
    """Whether every package the lock names is installed at the locked version."""
    lock = json.loads((node_dir / "package-lock.json").read_text())
    for path, entry in lock.get("packages", {}).items():
        if not path or entry.get("dev") or entry.get("optional"):
            continue
        manifest = node_dir / path / "package.json"
        if not manifest.is_file():
            return False
        if json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


@pytest.fixture(scope="session", name="node_packages")
def node_packages_fixture() -> Path:
    """``tests/node``, its packages installed (scripts there import them by name)."""
    if shutil.which("node") is None:
        _unavailable("Node.js is not installed (the graphql-http audit needs it)")
    if not installed_as_locked():
        npm = shutil.which("npm")
        if npm is None:
            _unavailable("npm is not installed: cannot install tests/node's packages")
        assert npm is not None
        done = subprocess.run(
            [npm, "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        if done.returncode != 0 or not installed_as_locked():
            _unavailable(
                f"npm ci --prefix tests/node failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            )
    return NODE_DIR
