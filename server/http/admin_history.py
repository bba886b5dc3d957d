"""Admin API: roll a module back to a stored version, cluster-wide (``POST /splice/admin/rollback``).

The history itself is ``GET modules/{path}/history`` in ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from ..core.context import current_actor
from .schemas.deploy import DeployBody, RollbackAnswer, RollbackBody, UndeployBody

if TYPE_CHECKING:
    from ..runtime import Runtime


def deployed_by(body: DeployBody | UndeployBody | RollbackBody) -> str:
    """The body's ``deployed_by``, else who makes the call (``X-Splice-Actor``, by default ``admin-api``)."""
    return body.deployed_by if "deployed_by" in body.model_fields_set else current_actor.get()


async def rollback(runtime: Runtime, request: Request, body: RollbackBody) -> RollbackAnswer:
    rollout = await runtime.deployments.rollback(body.path, body.version, deployed_by(body))
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
