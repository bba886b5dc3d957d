"""Admin API: the cluster's recent deployments (``GET /splice/admin/deployments``) and one stored version of a
module with its source (``GET /splice/admin/modules/{path}/versions/{version}``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from ..core.errors import NotFound
from .operations import Operation
from .schemas.observe import DeploymentsAnswer, DeploymentsQuery, StoredVersion

if TYPE_CHECKING:
    from ..runtime import Runtime


async def list_deployments(runtime: Runtime, request: Request, body: None) -> DeploymentsAnswer:
    query = DeploymentsQuery.model_validate(dict(request.query_params))  # checked by the operation already
    sequence = await runtime.repository.last_sequence()
    found = await runtime.repository.deployments(query.limit, query.before)
    return DeploymentsAnswer(sequence=sequence, deployments=found)  # type: ignore[arg-type]  # validated


async def stored_version(runtime: Runtime, request: Request, body: None) -> StoredVersion:
    path = request.path_params["path"]
    raw = request.path_params["version"]
    version = int(raw) if raw.isdigit() and len(raw) < 10 else 0
    found = await runtime.repository.stored_version(path, version) if version else None
    if found is None:
        history = await runtime.repository.history(path)
        if not history:
            raise NotFound(f"no module was ever deployed at {path}")
        raise NotFound(f"{path} has no version {raw} (it has v1 to v{history[-1]['version']})")
    return StoredVersion.model_validate(found)


OPERATIONS = [
    Operation(
        "GET",
        "/deployments",
        list_deployments,
        "Recent deployments and configuration changes, cluster-wide, newest first",
        DeploymentsAnswer,
        query=DeploymentsQuery,
    ),
    Operation(
        "GET",
        "/modules/{path:path}/versions/{version}",
        stored_version,
        "One stored version of a module, with its source",
        StoredVersion,
        errors=(404,),
    ),
]

__all__ = ["OPERATIONS"]
