"""Admin API: apply a declaration file (``splice.toml``) to the cluster (``POST /splice/admin/apply``).

The body carries the file's text and the secrets it names (``{"PARTNERS_PASSWORD": "..."}``), read by
the caller from its own environment; the answer is the plan carried out and each server's outcome.
Secrets are never logged or answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from ..core.errors import BadRequest
from ..declare import reader as declare
from ..declare.apply import apply_declaration

if TYPE_CHECKING:
    from ..runtime import Runtime


async def apply(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    text, file, secrets = body.get("text"), body.get("file") or "splice.toml", body.get("secrets") or {}
    if not isinstance(text, str):
        raise BadRequest("field 'text' must be the declaration file's contents, a string")
    if not isinstance(file, str):
        raise BadRequest("field 'file' must be a string")
    if not isinstance(secrets, dict) or not all(isinstance(v, str) for v in secrets.values()):
        raise BadRequest("field 'secrets' must be an object of environment variable names to strings")
    by = body.get("applied_by")
    declaration = declare.parse(text, file)
    resolved = declare.resolve_secrets(declaration, secrets, "the secrets sent with the call")
    answer = await apply_declaration(
        runtime,
        declaration,
        resolved,
        by=by if isinstance(by, str) and by else "admin-api",
        prune=_flag(body, "prune"),
        dry_run=_flag(body, "dry_run"),
    )
    return {"server": runtime.server.name, **answer}


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"field '{name}' must be a boolean")
    return value
