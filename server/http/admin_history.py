"""Admin API: roll a module back to a stored version, cluster-wide (``POST /splice/admin/rollback``).

The history itself is ``GET modules/{path}/history`` in ``admin``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..core.errors import BadRequest

if TYPE_CHECKING:
    from ..runtime import Runtime


async def rollback(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    path, version, by = body.get("path"), body.get("version"), body.get("deployed_by")
    if not isinstance(path, str) or not path:
        raise BadRequest("field 'path' must be a module path such as 'shop/orders.py'")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BadRequest(f"field 'version' must be a positive integer, got {version!r}")
    rollout = await runtime.deployments.rollback(path, version, by if isinstance(by, str) and by else "admin-api")
    result = rollout.result
    return {
        "server": runtime.server.name,
        "status": "rolled_back" if rollout.ok else "partial",
        "path": path,
        "rolled_back_to": version,
        "version": result.modules[0]["version"],
        **result.as_dict(),
        "servers": rollout.servers,
    }
