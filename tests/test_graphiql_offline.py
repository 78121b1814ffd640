"""GraphiQL works with the network closed: a real headless Chromium, every host name but
the loopback address unresolvable, loads /graphql from a real server and renders the
editor from the gateway's own assets."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import REQUIRE_SERVICES
from tests.serving import serving

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
    # The network is closed: no name resolves, except the loopback the server is on.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if REQUIRE_SERVICES:
            pytest.fail("Chromium is required (apt-get install chromium) but not installed")
        pytest.skip("Chromium is not installed")
    return found


def test_graphiql_renders_with_the_network_closed(tmp_path: Path) -> None:
    browser = chromium()
    with serving(["serve"], tmp_path, env={}) as served:
        page = httpx.get(served.url + "/graphql", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200
        # Everything the page loads is the gateway's own.
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources
        assert all(s.startswith("/") or s.startswith("data:") for s in sources), sources
        assert "https:" not in page.headers["content-security-policy"]
        for source in (s for s in sources if s.startswith("/")):
            assert httpx.get(served.url + source, timeout=10).status_code == 200, source

        result = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=15000", "--dump-dom", served.url + "/graphql"],
            capture_output=True, text=True, timeout=120,
        )
        dom = result.stdout
        assert "graphiql-container" in dom, (result.returncode, result.stderr[-2000:])
        assert "graphiql-query-editor" in dom
        assert "CodeMirror" in dom  # the editor itself, not the "Loading" placeholder
        assert "Loading GraphiQL" not in dom
