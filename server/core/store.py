"""The service store: which class answers to which name, swapped atomically.

The store keeps an immutable snapshot (a mapping from name to ``ServiceInfo``). A deployment builds
the next snapshot and replaces the reference in one assignment, so a call either sees the old
services or the new ones, never a mix; calls already running keep the class they started with.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .fields import Declared, declare
from .naming import check_service_name, service_name
from .service import Service


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    cls: type[Service]
    module: str
    path: str
    version: int
    input: Declared | None = None
    output: Declared | None = None
    is_async: bool = False

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.cls) or "") if self.cls.__doc__ else ""

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "module": self.module,
            "path": self.path,
            "class": self.cls.__qualname__,
            "version": self.version,
            "doc": self.doc,
            "async": self.is_async,
            "input": [f.as_dict() for f in self.input.fields] if self.input else [],
            "output": [f.as_dict() for f in self.output.fields] if self.output else [],
            "input_schema": self.input.schema if self.input else None,
            "output_schema": self.output.schema if self.output else None,
        }


def find_services(module_name: str, namespace: Mapping[str, object]) -> tuple[list[type[Service]], list[str]]:
    """The service classes a module defines, and what is wrong with any of them."""
    classes: list[type[Service]] = []
    problems: list[str] = []
    for value in namespace.values():
        if not (isinstance(value, type) and issubclass(value, Service) and value is not Service):
            continue
        if value.__module__ != module_name or value.__dict__.get("abstract", False) or value in classes:
            continue
        classes.append(value)
        if value.handle is Service.handle:
            problems.append(f"class {value.__name__} does not define handle()")
            continue
        problem = check_handle_signature(value)
        if problem:
            problems.append(f"class {value.__name__}: {problem}")
        explicit = value.__dict__.get("name")
        if explicit is not None and (bad := check_service_name(explicit)):
            problems.append(f"class {value.__name__}: {bad}")
    return classes, problems


def check_handle_signature(cls: type[Service]) -> str | None:
    for hook in ("handle", "before_handle", "after_handle"):
        try:
            params = list(inspect.signature(getattr(cls, hook)).parameters.values())
        except (TypeError, ValueError):
            return f"{hook} is not a function"
        required = [p for p in params[1:] if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not params or required:
            return f"{hook}() must take only self, it takes ({', '.join(p.name for p in params)})"
    return None


def describe(cls: type[Service], module: str, path: str, version: int, namespace: Mapping[str, object]) -> ServiceInfo:
    """Everything the store keeps about one service class; raises ``TypeError`` on a bad field declaration."""
    return ServiceInfo(
        name=service_name(module, cls.__name__, cls.__dict__.get("name")),
        cls=cls,
        module=module,
        path=path,
        version=version,
        input=declare(getattr(cls, "Input", None), namespace, owner=cls),
        output=declare(getattr(cls, "Output", None), namespace, output=True, owner=cls),
        is_async=inspect.iscoroutinefunction(cls.handle),
    )


class ServiceStore:
    """Name -> ``ServiceInfo``, replaced as a whole on every change."""

    def __init__(self) -> None:
        self._services: Mapping[str, ServiceInfo] = MappingProxyType({})

    def get(self, name: str) -> ServiceInfo | None:
        return self._services.get(name)

    def snapshot(self) -> Mapping[str, ServiceInfo]:
        return self._services

    def names(self) -> list[str]:
        return sorted(self._services)

    def by_module(self, module: str) -> list[ServiceInfo]:
        return [info for info in self._services.values() if info.module == module]

    def taken_by(self, name: str, replaced_modules: set[str]) -> ServiceInfo | None:
        """The service already called ``name`` in a module that is not being replaced, if any."""
        current = self._services.get(name)
        return current if current is not None and current.module not in replaced_modules else None

    def conflicts(self, replaced_modules: set[str], incoming: Iterable[ServiceInfo]) -> list[tuple[ServiceInfo, str]]:
        """Incoming services whose name another module (not being replaced) already uses, with that module."""
        return [
            (info, current.path)
            for info in incoming
            if (current := self.taken_by(info.name, replaced_modules | {info.module})) is not None
        ]

    def swap(self, replaced_modules: set[str], incoming: Iterable[ServiceInfo]) -> None:
        """Drop every service of ``replaced_modules`` and add ``incoming``, in one assignment."""
        nxt = {name: info for name, info in self._services.items() if info.module not in replaced_modules}
        for info in incoming:
            nxt[info.name] = info
        self._services = MappingProxyType(nxt)
