"""The lock in requirements/ matches pyproject.toml, and every imported package is declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
OWN = {"gateway", "resolvers", "rest", "data", "bench", "tests"}


def pins(name: str) -> dict[str, str]:
    text = (ROOT / "requirements" / name).read_text(encoding="utf-8")
    return {canonicalize_name(n): version for n, version in PIN.findall(text)}


def declared(*groups: list[str]) -> dict[str, Requirement]:
    return {canonicalize_name(r.name): r for group in groups for r in map(Requirement, group)}


RUNTIME = declared(PROJECT["dependencies"])
TEST = declared(PROJECT["dependencies"], PROJECT["optional-dependencies"]["test"])


def test_the_locks_pin_every_declared_dependency_within_its_range() -> None:
    """A pyproject.toml edited without `./dev lock` fails here, not on a fresh machine."""
    for lock, wanted in (("runtime.txt", RUNTIME), ("test.txt", TEST)):
        pinned = pins(lock)
        missing = sorted(set(wanted) - set(pinned))
        assert not missing, f"{lock} lacks {missing}: run ./dev lock"
        outside = sorted(
            f"{name}=={pinned[name]} ({req.specifier})"
            for name, req in wanted.items()
            if not req.specifier.contains(pinned[name], prereleases=True)
        )
        assert not outside, f"{lock} pins outside pyproject.toml's ranges: {outside}"
    assert "setuptools" in pins("runtime.txt")  # the build backend, for --no-build-isolation


def test_the_runtime_lock_is_the_test_locks_subset_at_the_same_versions() -> None:
    runtime, test = pins("runtime.txt"), pins("test.txt")
    assert runtime
    assert {name: test.get(name) for name in runtime} == runtime


def imported(*folders: str) -> set[str]:
    """The top-level names of every absolute import under the folders."""
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names - OWN - set(sys.stdlib_module_names) - {"__future__"}


def undeclared(modules: set[str], wanted: dict[str, Requirement]) -> list[str]:
    owners = packages_distributions()
    return sorted(
        f"{module} ({', '.join(owners.get(module, ['not installed']))})"
        for module in modules
        if not {canonicalize_name(d) for d in owners.get(module, [])} & set(wanted)
    )


def test_every_package_the_code_imports_is_declared() -> None:
    """Not left to arrive with another package, which may stop bringing it."""
    production = imported("gateway", "resolvers", "rest", "data")
    assert {"sqlalchemy", "strawberry", "starlette", "graphql", "greenlet"} <= production
    assert undeclared(production, RUNTIME) == []
    # The benchmark runs from a development install (./dev bench), like the tests.
    assert undeclared(imported("tests", "bench"), TEST) == []
    assert "httpx" not in production  # a test dependency only
