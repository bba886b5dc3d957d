"""What the deployment path carries: sources in, records stored, results out, and the ports it needs.

Plain records and protocols, no I/O: the engine (``engine``), the ODB adapter (``splice.server.odb``) and the
edges all speak these, so none of them needs to import another to know a module's shape.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ModuleSource:
    path: str
    source: str
    origin: str | None = None
    """Set when Splice deployed the file on its own (``pickup:<directory>``); ``None`` for deploy calls."""


@dataclass(frozen=True)
class ModuleRecord:
    """One deployed module as the ODB holds it."""

    path: str
    module: str
    version: int
    source: str
    sha256: str
    sequence: int
    deployed_by: str = ""
    deployed_at: str = ""
    origin: str | None = None


class DeployTransaction(Protocol):
    async def record_deploy(
        self, modules: Sequence[tuple[ModuleSource, str, str]], by: str
    ) -> tuple[int, dict[str, int]]:
        """Record modules (source, module name, sha256); returns the sequence and each module's version."""

    async def record_services(self, services: dict[str, list[dict[str, Any]]]) -> None:
        """Replace the catalog of services of each module path."""

    async def record_undeploy(self, paths: Sequence[str], by: str) -> int: ...


class DeploymentRepository(Protocol):
    def transaction(self) -> contextlib.AbstractAsyncContextManager[DeployTransaction]: ...

    async def current_modules(self) -> list[ModuleRecord]: ...

    async def state(self) -> tuple[int, list[ModuleRecord]]: ...

    async def changes(
        self, since: int, mine: Mapping[str, tuple[int, str]]
    ) -> tuple[int, dict[str, tuple[int, str]], bool, list[ModuleRecord]]:
        """The newest sequence, each deployed module's (version, sha256), whether channels or security changed after
        ``since``, and the records of the modules whose head differs from ``mine``: one read of the ODB."""


@dataclass(frozen=True)
class SyncResult:
    """What one sync with the ODB did: the sequence now applied, modules (re)loaded and removed, any error."""

    sequence: int
    loaded: dict[str, int]
    removed: list[str]
    error: str | None
    config_changed: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    """``read_ms`` (the ODB reads) and ``load_ms`` (files written, modules imported, store swapped)."""


@dataclass
class DeployResult:
    sequence: int
    modules: list[dict[str, Any]]
    timings: dict[str, float]
    reloaded: list[str] = field(default_factory=list)
    change: dict[str, Any] | None = None
    """What takes a server that applied ``sequence - 1`` to ``sequence`` (``DeploymentEngine.take_change``), for the
    notice to the other servers; ``None`` when a deployment from elsewhere came in between, or it is too large."""

    def as_dict(self) -> dict[str, object]:
        return {"sequence": self.sequence, "modules": self.modules, "reloaded": self.reloaded, "timings": self.timings}


@dataclass(frozen=True)
class UndeployResult:
    """What an undeploy removed on this server, and the deployment sequence it was recorded as."""

    sequence: int
    paths: list[str]
    services: list[str]
    total_ms: float

    def as_dict(self) -> dict[str, object]:
        return {"sequence": self.sequence, "paths": self.paths, "services": self.services, "total_ms": self.total_ms}


class Limits(Protocol):
    @property
    def max_module_bytes(self) -> int: ...

    @property
    def import_timeout(self) -> float: ...
