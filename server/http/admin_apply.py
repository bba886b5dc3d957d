"""Admin API: apply a declaration file (``splice.toml``) to the cluster (``POST /splice/admin/apply``).

The body carries the file's text and the secrets it names (``{"PARTNERS_PASSWORD": "..."}``), read by
the caller from its own environment; the answer is the plan carried out and each server's outcome.
Secrets are never logged or answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request

from ..core.context import current_actor
from ..declare import reader as declare
from ..declare.apply import apply_declaration
from .schemas.config import ApplyAnswer, ApplyBody

if TYPE_CHECKING:
    from ..runtime import Runtime


async def apply(runtime: Runtime, request: Request, body: ApplyBody) -> ApplyAnswer:
    declaration = declare.parse(body.text, body.file or "splice.toml")
    resolved = declare.resolve_secrets(declaration, body.secrets, "the secrets sent with the call")
    # The schema's default is "admin-api": a body that names nobody is applied as the X-Splice-Actor of the call.
    by = body.applied_by if "applied_by" in body.model_fields_set else current_actor.get()
    answer = await apply_declaration(runtime, declaration, resolved, by=by, prune=body.prune, dry_run=body.dry_run)
    return ApplyAnswer.model_validate({"server": runtime.server.name, **answer})
