"""The cluster an ODB repository works in: its engine and its row in ``clusters``, shared by every aggregate.

Each aggregate's repository (``deployments``, ``channels``, ``cluster``, ``jobs``) reads and writes within one
cluster's scope; ``ensure_cluster`` finds or makes that cluster's row before anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from .models import Cluster


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
        """Create the cluster's row if missing; idempotent. ``internal_token``: the token the cluster's servers
        present to each other (``splice.server.cluster.credentials``, derived from the cluster key), for those that
        call each other (servers, schedulers). It is kept in this object only: the ODB holds neither it nor its
        digest, so a database reader learns nothing that opens the admin API."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(Cluster.id).where(Cluster.name == self.cluster_name))).first()
            if row is None:
                result = await conn.execute(insert(Cluster).values(name=self.cluster_name))
                found = int(result.inserted_primary_key[0])  # type: ignore[index]
            else:
                found = int(row[0])
        self._cluster_id = found
        self.internal_token = internal_token
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
