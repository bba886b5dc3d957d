"""The cluster's members in the ODB: servers and their heartbeats, leases, tokens, and configuration changes."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..settings import split_member
from .models import Deployment, Lease, Server, Token
from .scope import ClusterScope, aware


class OdbCluster(ClusterScope):
    """Servers, leases, tokens and configuration changes of one cluster."""

    async def record_config_change(self, what: str, by: str) -> int:
        """A new sequence number for a change of channels or security, so that every server reloads them."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(Deployment).values(cluster_id=self.cluster_id, action=what[:20], deployed_by=by)
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def heartbeat(self, name: str, sequence: int, events: tuple[str, int] | None = None) -> int:
        """Say ``name`` is alive and has applied ``sequence`` (and, with ``events``, its boot id and how many cluster
        events it sent); returns the newest sequence of the cluster."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"last_seen": now, "last_sequence": sequence}
        if events is not None:
            values.update(events_boot=events[0], events_sent=events[1])
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Server).where(Server.cluster_id == self.cluster_id, Server.name == name).values(**values)
            )
            newest = await conn.execute(select(func.max(Deployment.id)).where(Deployment.cluster_id == self.cluster_id))
            return int(newest.scalar() or 0)

    async def mark_stopped(self, name: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Server).where(Server.cluster_id == self.cluster_id, Server.name == name).values(last_seen=None)
            )

    async def servers(self) -> list[dict[str, Any]]:
        """Every server that ever registered, with when it was last seen alive."""
        rows = await self._all(select(Server).where(Server.cluster_id == self.cluster_id).order_by(Server.name))
        return [
            {
                "name": r.name,
                "url": r.url,
                "pid": r.pid,
                "last_sequence": r.last_sequence,
                "last_seen": aware(r.last_seen),
                "events_boot": r.events_boot,
                "events_sent": r.events_sent,
            }
            for r in rows
        ]

    async def live_servers(self, within: float) -> list[dict[str, Any]]:
        """Servers seen alive in the last ``within`` seconds."""
        return [s for s in await self.servers() if seen_within(s, within)]

    async def acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take or renew lease ``name`` for ``ttl`` seconds; ``False`` if another holder has it."""
        now = datetime.now(UTC)
        expires = now + timedelta(seconds=ttl)
        where = (Lease.cluster_id == self.cluster_id, Lease.name == name)
        try:
            async with self.engine.begin() as conn:
                row = (await conn.execute(select(Lease.holder, Lease.expires_at).where(*where))).first()
                if row is None:
                    await conn.execute(
                        insert(Lease).values(cluster_id=self.cluster_id, name=name, holder=holder, expires_at=expires)
                    )
                    return True
                if row.holder != holder and aware(row.expires_at) > now:  # type: ignore[operator]
                    return False
                result = await conn.execute(
                    update(Lease)
                    .where(*where, Lease.holder == row.holder, Lease.expires_at == row.expires_at)
                    .values(holder=holder, expires_at=expires)
                )
                return bool(result.rowcount)
        except (IntegrityError, OperationalError):  # another server took it first, or held the write lock
            return False

    async def release_lease(self, name: str, holder: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(Lease).where(Lease.cluster_id == self.cluster_id, Lease.name == name, Lease.holder == holder)
            )

    async def leases(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """Leases whose name starts with ``prefix``: name → holder and ``expires_at`` (expired ones too)."""
        query = select(Lease).where(Lease.cluster_id == self.cluster_id, Lease.name.startswith(prefix, autoescape=True))
        return {r.name: {"holder": r.holder, "expires_at": aware(r.expires_at)} for r in await self._all(query)}

    async def register_server(self, name: str, url: str, pid: int, sequence: int) -> None:
        now = datetime.now(UTC)
        values = {"url": url, "pid": pid, "last_sequence": sequence, "started_at": now, "last_seen": now}
        values |= {"events_boot": None, "events_sent": 0}  # the new process says its boot at its first heartbeat
        async with self.engine.begin() as conn:
            where = (Server.cluster_id == self.cluster_id, Server.name == name)
            result = await conn.execute(update(Server).where(*where).values(**values))
            if result.rowcount == 0:
                await conn.execute(insert(Server).values(cluster_id=self.cluster_id, name=name, **values))

    async def retire_members(self, server: str, keep: Collection[str]) -> list[str]:
        """Remove the rows of ``server``'s processes that are not in ``keep``: ``server1`` once it runs workers,
        ``server1.wK`` beyond its worker count or once it runs one process again. A worker count that changed
        otherwise leaves rows that every deploy answer would show as ``down``. The names removed."""
        where = (
            Server.cluster_id == self.cluster_id,
            or_(Server.name == server, Server.name.startswith(f"{server}.w", autoescape=True)),
        )
        async with self.engine.begin() as conn:
            names = [str(r[0]) for r in await conn.execute(select(Server.name).where(*where))]
            stale = [n for n in names if n not in keep and split_member(n)[0] == server]
            if stale:
                await conn.execute(delete(Server).where(Server.cluster_id == self.cluster_id, Server.name.in_(stale)))
        return stale

    # -- tokens ----------------------------------------------------------------------------------

    async def add_token(self, name: str, token_sha256: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(Token).where(Token.cluster_id == self.cluster_id, Token.name == name))
            await conn.execute(insert(Token).values(cluster_id=self.cluster_id, name=name, token_sha256=token_sha256))

    async def token_hashes(self) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(Token.token_sha256).where(Token.cluster_id == self.cluster_id))
            return {r[0] for r in rows}


def seen_within(server: dict[str, Any], within: float) -> bool:
    """Whether a row of ``servers()`` was seen alive in the last ``within`` seconds."""
    last_seen: datetime | None = server["last_seen"]
    return last_seen is not None and last_seen >= datetime.now(UTC) - timedelta(seconds=within)
