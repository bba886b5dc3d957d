"""``GET /splice/admin/audit``: the audit log (who did what, when), newest first.

Every admin call that may change something is kept (``audit.record``): reads and the calls servers make to each
other are not. Filters: ``limit``, ``since`` (an ISO-8601 moment), ``actor`` (exactly), ``path`` (a prefix).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.requests import Request
from typing_extensions import TypedDict

from ..odb import audit
from .operations import Operation
from .schemas.common import answer_config

if TYPE_CHECKING:
    from ..runtime import Runtime


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class AuditQuery(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    limit: int = Field(50, ge=1, le=audit.MAX_LIMIT, description="how many, newest first")
    since: datetime | None = Field(
        None, description="only actions at or after this moment (ISO-8601; without a zone: UTC)"
    )
    actor: str | None = Field(None, max_length=200, description="only actions of this actor, e.g. cli:ann")
    path: str | None = Field(None, max_length=1000, description="only actions on paths starting with this")

    @field_validator("since", mode="before")
    @classmethod
    def _iso_only(cls, value: object) -> object:
        """An ISO-8601 moment only: pydantic would also take a number of seconds since 1970 ("0.5")."""
        if isinstance(value, str) and not _ISO_DATE.match(value):
            raise ValueError("must be an ISO-8601 moment, e.g. 2026-12-03T08:00 or 2026-12-03")
        return value


class AuditLine(TypedDict):
    id: int
    at: str
    """When the call ended (ISO-8601, UTC)."""
    actor: str
    """Who (``X-Splice-Actor``: ``cli:ann``, ``dashboard:bob``; ``admin-api`` when the caller did not say)."""
    method: str
    path: str
    status: int
    """The HTTP status the caller got."""
    server: str
    """The server that answered."""
    cid: str
    """The call's correlation id (``x-splice-cid``): its lines in the server's log."""


class AuditAnswer(BaseModel):
    model_config = answer_config(
        {
            "entries": [
                {
                    "id": 12,
                    "at": "2026-12-03T10:00:00+00:00",
                    "actor": "cli:ann",
                    "method": "POST",
                    "path": "/splice/admin/deploy",
                    "status": 200,
                    "server": "server1",
                    "cid": "c0a8f3e1b2d4",
                }
            ]
        }
    )

    entries: list[AuditLine]


async def list_audit(runtime: Runtime, request: Request, body: None) -> AuditAnswer:
    query = AuditQuery.model_validate(dict(request.query_params))  # checked by the operation already
    since = query.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    found = await audit.entries(runtime.repository, query.limit, since, query.actor, query.path)
    lines: list[AuditLine] = [
        {
            "id": entry.id,
            "at": entry.at.isoformat(),
            "actor": entry.actor,
            "method": entry.method,
            "path": entry.path,
            "status": entry.status,
            "server": entry.server,
            "cid": entry.cid,
        }
        for entry in found
    ]
    return AuditAnswer(entries=lines)


OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/audit",
        list_audit,
        "The audit log: every admin action that may change something (who, what, when, status), newest first",
        AuditAnswer,
        query=AuditQuery,
    ),
]

__all__ = ["OPERATIONS", "AuditAnswer", "AuditQuery"]
