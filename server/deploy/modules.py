"""Pure rules about user modules: what a module imports, who depends on whom, in what order to load.

User modules may import each other. Imports are read statically from the source (``ast``), so
redeploying ``billing/common.py`` also reloads every deployed module that imports it, in
dependency order. Imports done dynamically (``importlib.import_module(name)``) are not seen.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterable, Mapping

MAX_PART_BYTES = 255
"""The longest file or directory name in a module path, in bytes of UTF-8: what Linux file systems allow."""
MAX_PATH_CHARS = 500
"""The longest module path in characters: what the ODB keeps."""
MAX_PATH_BYTES = 1024
"""The longest module path in bytes of UTF-8 (it sits under the server's directory, within the OS's 4096)."""


def check_path_length(path: str) -> str | None:
    """What is too long in a module path (a file or directory name, or the whole), or ``None``."""
    for part in path.split("/"):
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > MAX_PART_BYTES:
            shown = part if len(part) <= 40 else f"{part[:20]}...{part[-12:]}"
            limit = MAX_PART_BYTES
            return f"'{shown}' in the module path has {size} bytes; a file or directory name may have at most {limit}"
    if len(path) > MAX_PATH_CHARS:
        return f"the module path has {len(path)} characters; it may have at most {MAX_PATH_CHARS}"
    size = len(path.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        return f"the module path has {size} bytes of UTF-8; it may have at most {MAX_PATH_BYTES}"
    return None


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
