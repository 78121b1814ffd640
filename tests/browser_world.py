"""A real server and a real headless Chromium, with the network closed but for loopback.

``live``: ``gateway serve`` in a subprocess, on PostgreSQL and Redis when reachable (as
CI requires), else on its embedded SQLite demo. ``chromium``: Debian's Chromium driven by
Playwright (never a downloaded browser). ``offline_page``: a page whose every request to
a host other than 127.0.0.1 is aborted and recorded; leaving it fails the test if any was
attempted, or if the page logged a console error or threw.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from data.db import Database
from data.migrate import upgrade_async
from data.seed import DEMO_PASSWORD, seed
from tests.conftest import (
    REDIS_URL,
    REQUIRE_SERVICES,
    SEED_SCALE,
    PostgresDatabases,
    _postgres_reachable,
)
from tests.serving import Served, serving

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

BROWSER_PACKAGES = Path(__file__).resolve().parent / "browser"
GRAPHQL_WS_UMD = BROWSER_PACKAGES / "node_modules" / "graphql-ws" / "umd" / "graphql-ws.min.js"
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Belt and braces with the request routing below: no name resolves but loopback's.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
LOOPBACK = "127.0.0.1"
TIMEOUT = 20.0


def missing(what: str) -> None:
    """Fails under ``GATEWAY_TEST_REQUIRE_SERVICES=1`` (CI), else skips."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required for the browser tests")
    pytest.skip(f"{what} is not available")


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("Chromium (apt-get install chromium)")
    assert found is not None
    return found


def graphql_ws_umd() -> Path:
    """graphql-ws's browser build, installed from ``tests/browser/package-lock.json``."""
    if not GRAPHQL_WS_UMD.is_file():
        npm = shutil.which("npm")
        if npm is None:
            missing("npm (for tests/browser's packages)")
        assert npm is not None
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=BROWSER_PACKAGES,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0 or not GRAPHQL_WS_UMD.is_file():
            pytest.fail(f"npm ci in {BROWSER_PACKAGES} failed:\n{result.stderr[-2000:]}")
    return GRAPHQL_WS_UMD


async def services_reachable() -> bool:
    import redis.asyncio as aioredis

    if not await _postgres_reachable():
        return False
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        return bool(await client.ping())
    except Exception:
        return False
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
async def live(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PostgresDatabases
) -> AsyncIterator[Served]:
    """One server for the module's tests; each test places orders of its own."""
    tmp = tmp_path_factory.mktemp("browser")
    env: dict[str, str] = {}
    if await services_reachable():
        url = await pg_databases.create()
        await upgrade_async(url)
        db = Database.from_url(url)
        try:
            async with db.write() as session:
                await seed(session, scale=SEED_SCALE, demo=True)
        finally:
            await db.dispose()
        env = {"DATABASE_URL": url, "REDIS_URL": REDIS_URL}
    elif REQUIRE_SERVICES:
        pytest.fail("PostgreSQL and Redis are required but unreachable")
    # Otherwise the embedded SQLite file, migrated and seeded with demo data on start.
    with serving(["serve"], tmp, env) as served:
        yield served


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Browser]:
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("Playwright for Python (the test extra)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


class Watch:
    """What a page did that a closed network or a working page would not allow."""

    def __init__(self) -> None:
        self.outside: list[str] = []
        self.problems: list[str] = []

    def console(self, message: Any) -> None:
        if message.type in ("error", "assert"):
            self.problems.append(f"console {message.type}: {message.text}")

    def page_error(self, error: Any) -> None:
        self.problems.append(f"page error: {error}")

    def websocket(self, socket: Any) -> None:
        if urlsplit(socket.url).hostname != LOOPBACK:
            self.outside.append(socket.url)

    async def route(self, route: Any) -> None:
        if urlsplit(route.request.url).hostname == LOOPBACK:
            await route.fallback()  # to a test's own route, or the network
        else:
            self.outside.append(route.request.url)
            await route.abort("internetdisconnected")


@asynccontextmanager
async def offline_page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT * 1000)
    watch = Watch()
    await context.route("**/*", watch.route)
    page = await context.new_page()
    page.on("console", watch.console)
    page.on("pageerror", watch.page_error)
    page.on("websocket", watch.websocket)
    try:
        yield page
        assert watch.outside == [], f"requests beyond loopback: {watch.outside}"
        assert watch.problems == [], "\n".join(watch.problems)
    finally:
        await context.close()


async def login(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def place_order(client: httpx.AsyncClient, token: str) -> int:
    listing = await client.get("/api/v1/products?in_stock=true&limit=1")
    product_id = listing.json()["data"][0]["id"]
    response = await client.post(
        "/api/v1/orders",
        headers={"Authorization": f"Bearer {token}"},
        json={"items": [{"product_id": product_id, "quantity": 1}]},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def set_status(client: httpx.AsyncClient, staff: str, order_id: int, status: str) -> None:
    response = await client.patch(
        f"/api/v1/orders/{order_id}",
        json={"status": status},
        headers={"Authorization": f"Bearer {staff}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


def wait(awaitable: Any) -> Any:
    return asyncio.wait_for(awaitable, TIMEOUT)
