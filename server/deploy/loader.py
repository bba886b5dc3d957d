"""Loading user modules from real files under ``<server dir>/work/deployed``.

``UserModules`` is an import finder placed first on ``sys.meta_path``: it alone answers for module
names that were deployed, compiling each from its file (no ``.pyc`` caches, so a module rewritten
twice within a second is never stale). Code objects carry the real file path, so tracebacks and
debuggers see the file the editor maps to. Packages without ``__init__.py`` are made on the fly.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

_import_lock = threading.Lock()


class UserModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finder and loader for deployed modules; ``overlay`` serves sources not (yet) written to disk."""

    def __init__(self, root: Path, files: Mapping[str, str] | None = None) -> None:
        self.root = root
        self._files: dict[str, str] = dict(files or {})
        self._packages: frozenset[str] | None = None
        self.overlay: dict[str, str] = {}

    @property
    def files(self) -> Mapping[str, str]:
        """Module name -> path relative to ``root``; change it with ``add``, ``discard`` or by assigning."""
        return self._files

    @files.setter
    def files(self, files: Mapping[str, str]) -> None:
        self._files = dict(files)
        self._packages = None

    def add(self, name: str, relative: str) -> None:
        self._files[name] = relative
        self._packages = None

    def discard(self, name: str) -> None:
        self._files.pop(name, None)
        self._packages = None

    def packages(self) -> frozenset[str]:
        """Every package that holds a deployed module (computed once per change, it is asked on every import)."""
        if self._packages is None:
            found: set[str] = set()
            for name in self._files:
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts)))
            self._packages = frozenset(found)
        return self._packages

    def owns(self, name: str) -> bool:
        return name in self.files or name in self.packages()

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        relative = self.files.get(fullname)
        if relative is not None:
            is_package = relative.endswith("/__init__.py") or relative == "__init__.py"
            origin = str(self.root / relative)
            spec = importlib.util.spec_from_loader(fullname, self, origin=origin, is_package=is_package)
            if spec is not None:
                spec.has_location = True
                if is_package:
                    spec.submodule_search_locations = []
            return spec
        if fullname in self.packages():
            # An empty search path: only this finder resolves submodules, never a file left on disk.
            spec = importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            spec.submodule_search_locations = []
            return spec
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        name = module.__name__
        relative = self.files.get(name)
        if relative is None:
            return
        path = self.root / relative
        source = self.overlay.get(name)
        if source is None:
            source = path.read_text(encoding="utf-8")
        module.__file__ = str(path)
        code = compile(source, str(path), "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def drop_working_directory_from_path() -> None:
    """``python -m`` puts the working directory first on ``sys.path``: a folder there must not pass for an
    installed package (it would make deployed modules of that name look like they shadow one). Servers and
    the isolation worker call this first."""
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]


def is_foreign(top: str, finder: UserModules) -> bool:
    """Whether ``top`` is importable from somewhere other than the deployed modules."""
    if top in sys.modules and not finder.owns(top):
        spec = getattr(sys.modules[top], "__spec__", None)
        return not isinstance(getattr(spec, "loader", None), UserModules)
    for entry in sys.meta_path:
        if entry is finder or isinstance(entry, UserModules):
            continue
        find = getattr(entry, "find_spec", None)
        if find is not None and find(top, None) is not None:
            return True
    return False


def forget(names: Iterable[str]) -> dict[str, ModuleType]:
    """Take modules out of ``sys.modules`` and off their parent package (whose attribute would otherwise keep an
    undeployed module alive for good); returns them for ``restore``."""
    saved = {}
    for name in names:
        module = sys.modules.pop(name, None)
        if module is not None:
            saved[name] = module
            _detach(name, module)
    return saved


def restore(saved: Mapping[str, ModuleType], loaded: Iterable[str]) -> dict[str, ModuleType]:
    """Put ``saved`` back in place of ``loaded``; returns the loaded modules taken out (garbage now)."""
    dropped = {}
    for name in loaded:
        module = sys.modules.pop(name, None)
        if module is not None:
            dropped[name] = module
            _detach(name, module)
    for name, module in saved.items():
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent and parent in sys.modules:
            setattr(sys.modules[parent], child, module)
    return dropped


def _detach(name: str, module: ModuleType) -> None:
    parent, _, child = name.rpartition(".")
    package = sys.modules.get(parent) if parent else None
    if package is not None and getattr(package, child, None) is module:
        delattr(package, child)


def import_all(order: Sequence[str]) -> dict[str, ModuleType]:
    """Import ``order`` afresh (they must have been forgotten); one thread at a time."""
    with _import_lock:
        importlib.invalidate_caches()
        return {name: importlib.import_module(name) for name in order}
