"""Outgoing connections in the ODB: their specs in clear, their secrets only as the cluster key encrypted them.

This layer never sees a secret in clear: callers hand in a ``Sealed`` (``connections.ClusterKey.encrypt``'s
token, which secrets it holds, and the key's id) and get it back on reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from .models import OutgoingConnection
from .scope import ClusterScope


@dataclass(frozen=True)
class Sealed:
    """Secrets as stored: the encrypted token, the names of the secrets in it, the id of the key."""

    token: str
    names: tuple[str, ...]
    key_id: str


class OdbOutgoing(ClusterScope):
    """Outgoing connections of one cluster."""

    async def list_outgoing(self) -> list[dict[str, Any]]:
        """Every connection: ``name``, ``kind``, ``config``, ``secret_names``, ``secrets`` (encrypted), ``key_id``."""
        where = OutgoingConnection.cluster_id == self.cluster_id
        rows = await self._all(select(OutgoingConnection).where(where).order_by(OutgoingConnection.name))
        return [_row(r) for r in rows]

    async def get_outgoing(self, name: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            found = await self._find(conn, name)
        if found is None:
            raise NotFound(f"no outgoing connection named '{name}'")
        return _row(found)

    async def put_outgoing(
        self, name: str, kind: str, config: dict[str, Any], sealed: Sealed | None, replace: bool
    ) -> bool:
        """Create ``name``, or with ``replace`` change it; ``sealed`` ``None`` keeps the stored secrets.

        Answers whether it was created. Without ``replace`` an existing name is a ``Conflict``."""
        try:
            async with self.engine.begin() as conn:
                return await put_outgoing_row(conn, self.cluster_id, name, kind, config, sealed, replace)
        except IntegrityError as exc:
            raise Conflict(f"outgoing connection '{name}' already exists") from exc

    async def delete_outgoing(self, name: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(OutgoingConnection).where(
                    OutgoingConnection.cluster_id == self.cluster_id, OutgoingConnection.name == name
                )
            )
        if result.rowcount == 0:
            raise NotFound(f"no outgoing connection named '{name}'")

    async def _find(self, conn: AsyncConnection, name: str) -> Any:
        query = select(OutgoingConnection).where(
            OutgoingConnection.cluster_id == self.cluster_id, OutgoingConnection.name == name
        )
        return (await conn.execute(query)).first()


async def put_outgoing_row(
    conn: AsyncConnection,
    cluster_id: int,
    name: str,
    kind: str,
    config: dict[str, Any],
    sealed: Sealed | None,
    replace: bool,
) -> bool:
    """``OdbOutgoing.put_outgoing`` in ``conn``'s transaction, for cluster ``cluster_id`` (also ``splice apply``'s
    one transaction, ``OdbChannels.apply_declared``). A ``sealed`` with no names removes the stored secrets."""
    values: dict[str, Any] = {"kind": kind, "config": config, "updated_at": datetime.now(UTC)}
    if sealed is not None:
        values.update(secrets=sealed.token or None, secret_names=list(sealed.names), key_id=sealed.key_id or None)
    where = (OutgoingConnection.cluster_id == cluster_id, OutgoingConnection.name == name)
    found = (await conn.execute(select(OutgoingConnection.id).where(*where))).first()
    if found is None:
        values.setdefault("secret_names", [])
        await conn.execute(insert(OutgoingConnection).values(cluster_id=cluster_id, name=name, **values))
        return True
    if not replace:
        raise Conflict(f"outgoing connection '{name}' already exists")
    await conn.execute(update(OutgoingConnection).where(OutgoingConnection.id == found.id).values(**values))
    return False


def _row(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind,
        "config": dict(row.config),
        "secret_names": list(row.secret_names or []),
        "secrets": row.secrets,
        "key_id": row.key_id,
        "updated_at": row.updated_at,
    }


__all__ = ["OdbOutgoing", "Sealed", "put_outgoing_row"]
