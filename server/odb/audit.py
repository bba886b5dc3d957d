"""The audit log in the ODB: one row per admin action (who, what, when, how it ended), read newest first.

Functions on a ``ClusterScope`` (the runtime's repository is one), so the log needs no place in ``OdbRepository``.
A row never holds a request body, a query string or a header: only the method, the path and the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select

from .models import AuditEntry
from .scope import ClusterScope, aware

MAX_LIMIT = 1000
"""The most entries one read returns."""


@dataclass(frozen=True)
class AuditRecord:
    """One admin action as kept."""

    id: int
    at: datetime
    actor: str
    method: str
    path: str
    status: int
    server: str
    cid: str


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


async def add(scope: ClusterScope, actor: str, method: str, path: str, status: int, server: str, cid: str) -> None:
    """Keep one admin action (one insert, its own short transaction)."""
    values = {
        "cluster_id": scope.cluster_id,
        "at": datetime.now(UTC),
        "actor": _cut(actor, 200),
        "method": _cut(method, 10),
        "path": _cut(path, 1000),
        "status": status,
        "server": _cut(server, 200),
        "cid": _cut(cid, 64),
    }
    async with scope.engine.begin() as conn:
        await conn.execute(insert(AuditEntry).values(**values))


async def entries(
    scope: ClusterScope,
    limit: int = 50,
    since: datetime | None = None,
    actor: str | None = None,
    path: str | None = None,
) -> list[AuditRecord]:
    """The newest ``limit`` actions (newest first); ``since``: at or after that moment; ``actor``: made by exactly
    that actor; ``path``: on paths starting with it."""
    query = select(AuditEntry).where(AuditEntry.cluster_id == scope.cluster_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if path:
        query = query.where(AuditEntry.path.startswith(path, autoescape=True))
    query = query.order_by(AuditEntry.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
    async with scope.engine.connect() as conn:
        rows = (await conn.execute(query)).all()  # a Core select of the model: one column per attribute
    return [
        AuditRecord(
            id=int(row.id),
            at=aware(row.at) or datetime.now(UTC),
            actor=row.actor,
            method=row.method,
            path=row.path,
            status=int(row.status),
            server=row.server,
            cid=row.cid,
        )
        for row in rows
    ]


__all__ = ["MAX_LIMIT", "AuditRecord", "add", "entries"]
