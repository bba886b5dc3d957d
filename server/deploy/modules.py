"""Pure rules about user modules: what a module imports, who depends on whom, in what order to load.

User modules may import each other. Imports are read statically from the source (``ast``), so
redeploying ``billing/common.py`` also reloads every deployed module that imports it, in
dependency order. Imports done dynamically (``importlib.import_module(name)``) are not seen.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Mapping


def imports_of(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every absolute module name ``tree`` may import, including parents and ``from x import name`` targets."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, package)
            if base is None:
                continue
            if base:
                found.update(_with_parents(base))
            for alias in node.names:
                if alias.name != "*":
                    found.add(f"{base}.{alias.name}" if base else alias.name)
    found.discard(module)
    return found


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _resolve(name: str | None, level: int, package: str) -> str | None:
    if level == 0:
        return name or None
    parts = package.split(".") if package else []
    if level > len(parts):  # beyond the top-level package: Python refuses it, so it imports nothing
        return None
    base = parts[: len(parts) - (level - 1)]
    if name:
        base.append(name)
    return ".".join(base)


def dependents(graph: Mapping[str, set[str]], changed: Iterable[str]) -> set[str]:
    """Modules that import any of ``changed``, directly or through others (``changed`` excluded)."""
    reverse: dict[str, set[str]] = {}
    for module, deps in graph.items():
        for dep in deps:
            reverse.setdefault(dep, set()).add(module)
    start = set(changed)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for importer in reverse.get(todo.pop(), ()):
            if importer not in seen and importer not in start:
                seen.add(importer)
                todo.append(importer)
    return seen


def load_order(graph: Mapping[str, set[str]], names: Iterable[str]) -> list[str]:
    """``names`` with dependencies first; ties and cycles are broken by name so the order is stable."""
    wanted = set(names)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return
        state[name] = 1
        # Walk through modules that are not wanted too: a -> x -> b still puts b before a.
        for dep in sorted(graph.get(name, ())):
            visit(dep)
        state[name] = 2
        if name in wanted:
            order.append(name)

    for name in sorted(wanted):
        visit(name)
    return order


def shadowed(module: str, is_foreign: Callable[[str], bool]) -> str | None:
    """The top-level name that a user module would take away from Python or an installed package, if any."""
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ("splice", "__main__") or is_foreign(top):
        return top
    return None
