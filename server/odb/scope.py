"""The cluster an ODB repository works in: its engine and its row in ``clusters``, shared by every aggregate.

Each aggregate's repository (``deployments``, ``channels``, ``cluster``, ``jobs``) reads and writes within one
cluster's scope; ``ensure_cluster`` finds or makes that cluster's row before anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..channels.security import new_token, token_digest
from .models import Cluster, Token


class ClusterScope:
    """One cluster of one ODB: the engine, the cluster's id (once ``ensure_cluster`` ran) and its internal token."""

    def __init__(self, engine: AsyncEngine, cluster_name: str) -> None:
        self.engine = engine
        self.cluster_name = cluster_name
        self._cluster_id: int | None = None
        self.internal_token = ""
        """The token this cluster's servers use to call each other (set by ``ensure_cluster``)."""

    @property
    def cluster_id(self) -> int:
        if self._cluster_id is None:
            raise RuntimeError("call ensure_cluster() first")
        return self._cluster_id

    async def _all(self, query: Select[*tuple[Any, ...]]) -> Sequence[Row[*tuple[Any, ...]]]:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).all()

    async def ensure_cluster(self, internal_token: str = "") -> int:
        """Create the cluster's row (and its internal token) if missing; idempotent. ``internal_token``: the token
        the cluster's servers present to each other (``splice.server.cluster.credentials``), for those that call
        each other (servers, schedulers)."""
        async with self.engine.begin() as conn:
            query = select(Cluster.id, Cluster.internal_token).where(Cluster.name == self.cluster_name)
            row = (await conn.execute(query)).first()
            if row is None:
                result = await conn.execute(insert(Cluster).values(name=self.cluster_name))
                found, internal = int(result.inserted_primary_key[0]), None  # type: ignore[index]
            else:
                found, internal = int(row[0]), row[1]
            if internal is None:
                internal = new_token()
                await conn.execute(update(Cluster).where(Cluster.id == found).values(internal_token=internal))
                await conn.execute(delete(Token).where(Token.cluster_id == found, Token.name == "internal"))
                digest = token_digest(internal)
                await conn.execute(insert(Token).values(cluster_id=found, name="internal", token_sha256=digest))
        self._cluster_id = found
        self.internal_token = internal_token or str(internal)
        return self._cluster_id


def aware(value: datetime | None) -> datetime | None:
    """SQLite and MariaDB hand back naive datetimes; they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def iso(value: datetime | None) -> str:
    """A stored moment in ISO-8601 (UTC), or ``""`` for none."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()
