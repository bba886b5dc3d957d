"""Pure rules of the pickup directory: which files count, what they are named, and what to do about them.

A pickup directory is a project root: ``shop/orders.py`` in it is deployed as module ``shop.orders``.
Editor swap and backup files, ``.git/``, ``__pycache__/`` and every hidden file or directory are
ignored; ``splice.toml`` and ``*.splice.toml`` are configuration, not code. ``plan`` compares what the
directory holds with what the ODB runs and says what to deploy and what to undeploy; it only ever
undeploys modules whose recorded origin is this directory, never ones deployed by other means.

No I/O here: the watcher (``pickup.py``) reads the files and calls these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from ..core.naming import check_module_path
from ..deploy.modules import dependents

CONFIG_FILE = "splice.toml"
CONFIG_SUFFIX = ".splice.toml"
_IGNORED_SUFFIXES = (".swp", ".swx", ".swo", "~", ".tmp")
_IGNORED_NAMES = frozenset({"4913", "__pycache__"})
_MAX_TAG = 200
"""The ODB keeps lease names in 200 characters; longer directory names are shortened by a digest."""

Kind = Literal["module", "config"]


class Deployed(Protocol):
    """What ``plan`` needs of a deployed module (``deploy.ModuleRecord`` has it)."""

    @property
    def path(self) -> str: ...

    @property
    def sha256(self) -> str: ...

    @property
    def origin(self) -> str | None: ...


@dataclass(frozen=True)
class Plan:
    """What to do so that the ODB runs what the directory holds."""

    deploy: tuple[str, ...] = ()
    """Module paths new in the directory or changed there (sha256 differs from the deployed one)."""
    undeploy: tuple[str, ...] = ()
    """Module paths deployed from this directory whose file is gone."""
    unchanged: tuple[str, ...] = ()


def tag(root: str) -> str:
    """The lease name and the recorded origin of modules deployed from the directory ``root`` (absolute)."""
    text = f"pickup:{root}"
    if len(text) <= _MAX_TAG:
        return text
    digest = hashlib.sha256(root.encode()).hexdigest()[:16]
    return f"pickup:{digest}:…{root[-(_MAX_TAG - 26) :]}"


def relative(root: str, path: str) -> str | None:
    """``path`` relative to ``root`` with ``/`` separators; ``None`` if it is the root or outside it."""
    root = root.rstrip("/")
    if not path.startswith(root + "/"):
        return None
    rest = path[len(root) + 1 :].strip("/")
    return rest or None


def ignored(rel: str) -> bool:
    """Whether a path relative to the pickup root is noise: hidden, a swap or backup file, a cache."""
    for part in rel.split("/"):
        if not part or part.startswith(".") or part in _IGNORED_NAMES:
            return True
    name = rel.rsplit("/", 1)[-1]
    return name.endswith(_IGNORED_SUFFIXES)


def kind(rel: str) -> Kind | None:
    """``module`` for Python source, ``config`` for configuration as code, ``None`` for anything else."""
    if ignored(rel):
        return None
    name = rel.rsplit("/", 1)[-1]
    if name == CONFIG_FILE or name.endswith(CONFIG_SUFFIX):
        return "config"
    if name.endswith(".py"):
        return "module"
    return None


def module_problem(rel: str) -> str | None:
    """Why a ``.py`` file in the pickup directory cannot be a module (``my-script.py``), or ``None``."""
    return check_module_path(rel)


def in_scope(rel: str, scope: Collection[str] | None) -> bool:
    """Whether ``rel`` is one of the changed paths or lies under one of them (a directory moved or removed)."""
    if scope is None:
        return True
    if rel in scope:
        return True
    parts = rel.split("/")
    return any("/".join(parts[:i]) in scope for i in range(1, len(parts)))


def plan(
    files: Mapping[str, str], deployed: Iterable[Deployed], origin: str, scope: Collection[str] | None = None
) -> Plan:
    """Compare the directory's module files (relative path → sha256) with the deployed modules.

    ``scope`` limits the comparison to changed paths (``None``: the whole directory, as at start).
    """
    current = {r.path: r for r in deployed}
    deploy, unchanged = [], []
    for rel in sorted(files):
        if not in_scope(rel, scope):
            continue
        record = current.get(rel)
        if record is not None and record.sha256 == files[rel]:
            unchanged.append(rel)
        else:
            deploy.append(rel)
    undeploy = [
        path
        for path, record in sorted(current.items())
        if record.origin == origin and path not in files and in_scope(path, scope)
    ]
    return Plan(tuple(deploy), tuple(undeploy), tuple(unchanged))


def batch_graph(imports: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """Module → the modules of the batch it needs: what it imports, and its parent packages (run on import)."""
    names = set(imports)
    graph: dict[str, set[str]] = {}
    for name, found in imports.items():
        parts = name.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}
        graph[name] = (found | parents) & names - {name}
    return graph


def casualties(graph: Mapping[str, set[str]], failed: Iterable[str]) -> set[str]:
    """The failed modules and every batch module that needs one of them: all are left out of the retry."""
    failed = set(failed)
    return failed | dependents(graph, failed)
