"""The GraphQL-over-HTTP spec's own audit suite (npm ``graphql-http``, ``auditServer``)
against a live ``gateway serve``: every audit passes, none warns, on SQLite and on
PostgreSQL with Redis. Run twice, so the second run's answers come from the response
cache (``{ __typename }`` is shareable) in every media type the audits accept."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cache_world import redis_reachable
from tests.conftest import REDIS_URL, REQUIRE_SERVICES, SeededDatabase
from tests.npm_packages import node_packages_fixture  # noqa: F401  (``node_packages``)
from tests.serving import serving

AUDIT_TIMEOUT = 180.0
# The audits the application/graphql-response+json rules decide ("watershed").
WATERSHED = {"22EB", "865D", "556A", "D586", "51FE", "74FF", "5E5B", "86EE"}


async def run_audit(node_dir: Path, url: str) -> list[dict[str, Any]]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(node_dir / "graphql_http_audit.mjs"),
        url,
        cwd=node_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), AUDIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, err.decode(errors="replace")
    report: list[dict[str, Any]] = json.loads(out)
    return report


async def test_the_graphql_over_http_audit_passes_without_a_warning(
    node_packages: Path, seeded: SeededDatabase, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": seeded.url}
    if seeded.backend == "postgresql":
        if await redis_reachable():
            env["REDIS_URL"] = REDIS_URL
        elif REQUIRE_SERVICES:
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
    with serving(["serve"], tmp_path, env) as served:
        for attempt in ("first", "cached"):
            report = await run_audit(node_packages, served.url + "/graphql")
            failed = [result for result in report if result["status"] != "ok"]
            assert not failed, (
                f"{attempt} run: {len(failed)} of {len(report)} audits did "
                "not pass:\n" + json.dumps(failed, indent=2)
            )
            assert WATERSHED <= {result["id"] for result in report}
            assert len(report) > 50, report
