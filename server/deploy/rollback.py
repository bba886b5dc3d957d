"""Rolling a module back to a version the ODB kept, through the normal deployment path.

A rollback is a deployment like any other: the stored source is validated again (the modules around
it may have changed since), recorded as a new version whose origin says ``rollback:v<N>``, and told to
every server. History is never rewritten.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..core.errors import NotFound, SpliceError
from .engine import DeploymentEngine
from .records import DeployResult, ModuleRecord, ModuleSource


class RollbackRefused(SpliceError):
    """The version asked for holds no code to go back to (it recorded an undeploy)."""

    code = "rollback_refused"


class VersionStore(Protocol):
    async def history(self, path: str) -> list[dict[str, Any]]: ...

    async def version(self, path: str, version: int) -> ModuleRecord | None: ...


async def rollback(
    versions: VersionStore, engine: DeploymentEngine, path: str, version: int, by: str = ""
) -> DeployResult:
    """Deploy version ``version`` of ``path`` again as a new version; raises ``NotFound``, ``RollbackRefused`` or
    ``DeployError`` (the old source no longer validates, and nothing changed)."""
    history = await versions.history(path)
    if not history:
        raise NotFound(f"no module was ever deployed at {path}")
    entry = next((h for h in history if h["version"] == version), None)
    if entry is None:
        raise NotFound(f"{path} has no version {version} (it has v1 to v{history[-1]['version']})")
    record = await versions.version(path, version)
    if entry["action"] != "deploy" or record is None:
        raise RollbackRefused(
            f"{path} v{version} recorded an {entry['action']}, not code: pick a version that deployed it"
        )
    return await engine.deploy([ModuleSource(path, record.source, origin=f"rollback:v{version}")], by=by)
