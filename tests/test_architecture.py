"""The layout's rules, read from the code's own imports (DESIGN.md "Inside server/", "Dependency direction").

Every ``import`` statement counts: module level, inside functions, and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("server", "scheduler", "lsp", "testing", "dashboard")
FORBIDDEN_IN_CORE = ("starlette", "hypercorn", "sqlalchemy", "aiosqlite", "asyncpg", "aiomysql", "alembic", "redis")
FORBIDDEN_IN_CORE += ("httpx", "pygls", "lsprotocol")
MAX_LINES = 600
MAX_TOP_MODULES = 12


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


@cache
def modules() -> dict[str, Module]:
    found = {}
    for part in PARTS:
        for path in sorted((ROOT / part).rglob("*.py")):
            if "migrations" in path.parts:
                continue  # Alembic's scripts: loaded by Alembic, not imported
            names = ["splice", *path.relative_to(ROOT).with_suffix("").parts]
            if names[-1] == "__init__":
                names.pop()
            found[".".join(names)] = Module(".".join(names), path)
    return found


@cache
def tree(module: Module) -> ast.Module:
    return ast.parse(module.path.read_text(encoding="utf-8"))


def imports(module: Module) -> Iterator[tuple[str, str | None, int]]:
    """``(module imported, name imported from it or None, line)`` for every import statement."""
    for node in ast.walk(tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                yield target, alias.name, node.lineno


def edges(module: Module) -> Iterator[tuple[str, str | None, int]]:
    """The modules of ours that ``module`` imports (a ``from package import submodule`` names the submodule)."""
    known = modules()
    for target, name, line in imports(module):
        if name is not None and f"{target}.{name}" in known:
            yield f"{target}.{name}", None, line
        elif target in known:
            yield target, name, line


def unit(name: str) -> str:
    """The unit a module belongs to: a sub-package of ``splice.server``, a module at its top, or a part
    (``splice.lsp``...)."""
    parts = name.split(".")
    if parts[1] != "server":
        return ".".join(parts[:2])
    if len(parts) == 2:
        return "splice.server"
    return ".".join(parts[:3])


def all_names(module: Module) -> list[str] | None:
    """The module's ``__all__`` (a literal list), or ``None`` if it has none."""
    for node in tree(module).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [str(name) for name in ast.literal_eval(node.value)]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__":
            return [str(name) for name in ast.literal_eval(node.value)] if node.value is not None else []
    return None


def unit_graph() -> dict[str, dict[str, tuple[str, int]]]:
    """unit -> unit it imports -> one place that does it (module, line)."""
    graph: dict[str, dict[str, tuple[str, int]]] = {}
    for name, module in modules().items():
        for target, _, line in edges(module):
            a, b = unit(name), unit(target)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, (name, line))
    return graph


def cycles(graph: dict[str, dict[str, tuple[str, int]]]) -> list[list[str]]:
    """The strongly connected components of more than one unit (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in graph.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_crosses_a_package_boundary() -> None:
    graph = unit_graph()
    described = []
    for component in cycles(graph):
        links = [
            f"  {a} -> {b} ({graph[a][b][0]}:{graph[a][b][1]})"
            for a in component
            for b in component
            if b in graph.get(a, {})
        ]
        described.append("\n".join([" <-> ".join(component), *links]))
    assert not described, "import cycles across packages:\n" + "\n".join(described)


@pytest.mark.parametrize("package", ["splice.server.core", "splice.server.deploy"])
def test_the_core_and_the_deployment_engine_import_no_adapter(package: str) -> None:
    bad = [
        f"{module.path.relative_to(ROOT)}:{line}: {target}"
        for name, module in modules().items()
        if name == package or name.startswith(package + ".")
        for target, _, line in imports(module)
        if target.split(".")[0] in FORBIDDEN_IN_CORE
    ]
    assert not bad, f"{package} imports adapters:\n" + "\n".join(bad)


def test_no_module_grows_past_600_lines() -> None:
    long = {
        str(m.path.relative_to(ROOT)): n
        for m in modules().values()
        if (n := len(m.path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concern: {long}"


def test_a_dozen_modules_at_most_at_the_top_of_server() -> None:
    top = sorted(p.name for p in (ROOT / "server").glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_MODULES, top


def test_every_package_names_its_api() -> None:
    missing = [str(m.path.relative_to(ROOT)) for m in modules().values() if m.is_package and all_names(m) is None]
    assert not missing, "no __all__ in: " + ", ".join(missing)


@pytest.mark.parametrize("part", ["splice.scheduler", "splice.lsp", "splice.dashboard"])
def test_the_scheduler_the_language_server_and_the_dashboard_use_only_the_public_api(part: str) -> None:
    known = modules()
    bad = []
    for name, module in known.items():
        if unit(name) != part:
            continue
        for target, imported, line in edges(module):
            if not target.startswith("splice.server"):
                continue
            where = f"{module.path.relative_to(ROOT)}:{line}"
            if any(piece.startswith("_") for piece in target.split(".")):
                bad.append(f"{where}: private module {target}")
            elif imported is not None and imported not in (all_names(known[target]) or []):
                bad.append(f"{where}: {target}.{imported} is not in {target}.__all__")
    assert not bad, "\n".join(bad)
