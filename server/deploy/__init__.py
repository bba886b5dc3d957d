"""The deployment path: validate, persist, load, tell the cluster, answer (DESIGN.md, "The deployment path").

``DeploymentPath`` is the one use case every source of a change calls; ``DeploymentEngine`` does the work on one
server; ``records`` holds the shapes and ports they share with the ODB and the edges.
"""

from __future__ import annotations

from .engine import DeploymentEngine
from .isolate import Isolation
from .path import Cluster, DeploymentPath, Rollout, ServerOutcome
from .records import (
    DeploymentRepository,
    DeployResult,
    DeployTransaction,
    Limits,
    ModuleRecord,
    ModuleSource,
    SyncResult,
    UndeployResult,
)
from .rollback import RollbackRefused, VersionStore

__all__ = [
    "Cluster",
    "DeployResult",
    "DeployTransaction",
    "DeploymentEngine",
    "DeploymentPath",
    "DeploymentRepository",
    "Isolation",
    "Limits",
    "ModuleRecord",
    "ModuleSource",
    "RollbackRefused",
    "Rollout",
    "ServerOutcome",
    "SyncResult",
    "UndeployResult",
    "VersionStore",
]
