"""The packages' layers, read from the code's own imports.

``data`` (models, services, policy) is the ground: it imports no web framework and none
of the layers above it. ``resolvers`` (GraphQL) and ``rest`` (REST) are adapters over it,
side by side: neither imports the other, nor ``gateway``. ``gateway`` composes them; its
concerns (``http``, ``cache``, ``ratelimit``, ``observability``) never reach back up to the
modules that assemble and run the application. No modules import each other in a loop.

The compiled read path (``gateway.compiled``) is one such concern, and a closed one: only
the assembly imports it, so the resolvers and the REST handlers reach it solely through
the hooks they define (``resolvers.fast_reads``, ``rest.fast_reads``), which the app
factory fills. Its SQL planner (``gateway.compiled.planner``) builds on ``data`` alone,
like ``data`` itself: no web framework, no GraphQL, no adapter.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("data", "resolvers", "rest", "gateway")
# The application's assembly and entry points: only they may import everything.
ASSEMBLY = frozenset({"gateway.app", "gateway.cli", "gateway.server", "gateway.gunicorn_conf"})
CONCERNS = (
    "gateway.http",
    "gateway.cache",
    "gateway.ratelimit",
    "gateway.observability",
    "gateway.compiled",
)
COMPILED = "gateway.compiled"
PLANNER = "gateway.compiled.planner"
FRAMEWORKS = ("fastapi", "starlette", "strawberry", "uvicorn", "gunicorn")


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imports() -> dict[str, set[str]]:
    """Every production module and the modules it imports (anywhere in it)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            names: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
                    # ``from gateway.http import front`` imports the module ``front``.
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
            found[module_name(path)] = names
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_map_is_read() -> None:
    found = imports()
    assert "gateway.cache.middleware" in found
    assert "data.changes" in found["gateway.cache.middleware"]
    assert len(found) > 100


def test_data_imports_no_layer_above_it_and_no_web_framework() -> None:
    wrong = sorted(
        (module, name)
        for module, names in imports().items()
        if within(module, "data")
        for name in names
        if name.split(".")[0] in ("resolvers", "rest", "gateway", *FRAMEWORKS)
    )
    assert wrong == []


def test_the_two_interfaces_import_neither_each_other_nor_the_gateway() -> None:
    wrong = sorted(
        (module, name)
        for module, names in imports().items()
        for this, others in (("resolvers", ("rest", "gateway")), ("rest", ("resolvers", "gateway")))
        if within(module, this)
        for name in names
        if name.split(".")[0] in others
    )
    assert wrong == []


def test_only_the_assembly_imports_the_compiled_read_path() -> None:
    found = imports()
    assert "gateway.compiled.lane" in found
    importers = sorted(
        module
        for module, names in found.items()
        if not within(module, COMPILED)
        if any(within(name, COMPILED) for name in names)
    )
    assert importers == ["gateway.app"]


def test_the_planner_builds_on_data_alone() -> None:
    found = imports()
    assert "gateway.compiled.planner.graph" in found
    wrong = sorted(
        (module, name)
        for module, names in found.items()
        if within(module, PLANNER)
        for name in names
        if name.split(".")[0] in ("resolvers", "rest", "graphql", *FRAMEWORKS)
        or (within(name, "gateway") and not within(name, PLANNER))
    )
    assert wrong == []


def test_the_gateways_concerns_never_import_the_assembly() -> None:
    wrong = sorted(
        (module, name)
        for module, names in imports().items()
        if any(within(module, concern) for concern in CONCERNS)
        for name in names
        if any(within(name, assembly) for assembly in ASSEMBLY)
    )
    assert wrong == []


def test_no_modules_import_each_other_in_a_loop() -> None:
    found = imports()
    graph = {module: {name for name in names if name in found} for module, names in found.items()}
    loops: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for name in graph[module]:
            if name not in index:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in on_stack:
                low[module] = min(low[module], index[name])
        if low[module] == index[module]:
            component = []
            while True:
                name = stack.pop()
                on_stack.discard(name)
                component.append(name)
                if name == module:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    assert loops == []
