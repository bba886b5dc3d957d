"""Admin API: roll a module back to a stored version, cluster-wide (``POST /splice/admin/rollback``).

The history itself is ``GET modules/{path}/history`` in ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from .schemas.deploy import RollbackAnswer, RollbackBody

if TYPE_CHECKING:
    from ..runtime import Runtime


async def rollback(runtime: Runtime, request: Request, body: RollbackBody) -> RollbackAnswer:
    by = body.deployed_by or "admin-api"
    rollout = await runtime.deployments.rollback(body.path, body.version, by)
    result = rollout.result
    return RollbackAnswer(
        server=runtime.server.name,
        status="rolled_back" if rollout.ok else "partial",
        path=body.path,
        rolled_back_to=body.version,
        version=result.modules[0]["version"],
        sequence=result.sequence,
        modules=result.modules,  # type: ignore[arg-type]  # validated into DeployedModule
        reloaded=result.reloaded,
        timings=result.timings,
        servers=rollout.servers,  # type: ignore[arg-type]
    )
