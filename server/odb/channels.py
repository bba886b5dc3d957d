"""Channels and security definitions in the ODB, and ``splice apply``'s one transaction that changes them (with
outgoing connections, topics, subscriptions, topic permissions and caches)."""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from ..declare.reader import Declaration, Plan, SealedSecrets
from .models import CacheDefinition, Channel, OutgoingConnection, SecurityDefinition, Subscription, Topic
from .outgoing import Sealed, put_outgoing_row
from .scope import ClusterScope
from .topics import NamedTable, delete_named_row, delete_permission_row, put_named_row, put_permission_row

_DEFINED: dict[str, NamedTable] = {"topic": Topic, "subscription": Subscription, "cache": CacheDefinition}
"""The tables of what a declaration file defines by name (topic permissions are by security definition)."""


class OdbChannels(ClusterScope):
    """Channels and security definitions of one cluster."""

    async def create_security(
        self, name: str, kind: str, username: str | None, header: str | None, secret_hash: str
    ) -> None:
        values = {"name": name, "kind": kind, "username": username, "header": header, "secret_hash": secret_hash}
        await self._insert_unique(SecurityDefinition, values, f"security definition '{name}' already exists")

    async def list_security(self) -> list[dict[str, Any]]:
        query = select(SecurityDefinition).where(SecurityDefinition.cluster_id == self.cluster_id)
        rows = await self._all(query.order_by(SecurityDefinition.name))
        return [
            {
                "id": r.id,
                "name": r.name,
                "kind": r.kind,
                "username": r.username,
                "header": r.header,
                "secret_hash": r.secret_hash,
            }
            for r in rows
        ]

    async def delete_security(self, name: str) -> None:
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(SecurityDefinition.id).where(
                        SecurityDefinition.cluster_id == self.cluster_id, SecurityDefinition.name == name
                    )
                )
            ).scalar()
            if found is None:
                raise NotFound(f"no security definition named '{name}'")
            users = (await conn.execute(select(Channel.name).where(Channel.security_id == found))).scalars().all()
            if users:
                raise Conflict(f"security definition '{name}' is used by channels: {', '.join(sorted(users))}")
            await conn.execute(delete(SecurityDefinition).where(SecurityDefinition.id == found))

    # -- channels --------------------------------------------------------------------------------

    async def create_channel(
        self,
        name: str,
        path: str,
        methods: list[str],
        service: str,
        security: str | None,
        kind: str = "rest",
        options: dict[str, Any] | None = None,
    ) -> None:
        """A channel of any kind: REST, WebSocket and JSON-RPC use ``path``; what else a kind has is ``options``."""
        security_id = None
        if security is not None:
            async with self.engine.connect() as conn:
                security_id = (
                    await conn.execute(
                        select(SecurityDefinition.id).where(
                            SecurityDefinition.cluster_id == self.cluster_id, SecurityDefinition.name == security
                        )
                    )
                ).scalar()
            if security_id is None:
                raise NotFound(f"no security definition named '{security}'")
        values = {
            "name": name,
            "kind": kind,
            "path": path,
            "methods": methods,
            "service": service,
            "security_id": security_id,
            "options": options,
        }
        await self._insert_unique(Channel, values, f"channel '{name}' already exists")

    async def list_channels(self) -> list[dict[str, Any]]:
        query = (
            select(Channel, SecurityDefinition.name.label("security"))
            .outerjoin(SecurityDefinition, SecurityDefinition.id == Channel.security_id)
            .where(Channel.cluster_id == self.cluster_id)
            .order_by(Channel.name)
        )
        rows = await self._all(query)
        return [
            {
                "name": r.name,
                "kind": r.kind,
                "path": r.path,
                "methods": r.methods,
                "service": r.service,
                "security": r.security,
                "options": r.options,
            }
            for r in rows
        ]

    async def delete_channel(self, name: str) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(Channel).where(Channel.cluster_id == self.cluster_id, Channel.name == name)
            )
        if result.rowcount == 0:
            raise NotFound(f"no channel named '{name}'")

    async def _insert_unique(
        self, model: type[Channel] | type[SecurityDefinition], values: dict[str, Any], taken: str
    ) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(model).values(cluster_id=self.cluster_id, **values))
        except IntegrityError as exc:
            raise Conflict(taken) from exc

    # -- declared configuration (splice apply) ---------------------------------------------------

    async def apply_declared(
        self,
        declaration: Declaration,
        plan: Plan,
        secret_hashes: dict[str, str],
        sealed: dict[str, SealedSecrets | None],
    ) -> None:
        """Carry out ``plan`` (made for ``declaration``) in one transaction: all of it or nothing.

        ``secret_hashes`` holds the hashed secret of every security definition the plan creates or updates,
        ``sealed`` the encrypted secrets of every outgoing connection it creates or updates (``None``: keep the
        stored ones).
        """
        security = {s.name: s for s in declaration.security}
        outgoing = {o.name: o for o in declaration.outgoing}
        channels = {c.name: c for c in declaration.channels}
        values: dict[str, Any]
        try:
            async with self.engine.begin() as conn:
                for change in plan.of("security", "create", "update"):
                    spec = security[change.name]
                    values = {"kind": spec.kind, "username": spec.username, "header": spec.header}
                    values["secret_hash"] = secret_hashes[spec.name]
                    await self._put(conn, SecurityDefinition, change.name, change.action, values)
                for change in plan.of("outgoing", "create", "update"):
                    out, kept = outgoing[change.name], sealed.get(change.name)
                    stored = None if kept is None else Sealed(kept.token, kept.names, kept.key_id)
                    replace = change.action == "update"
                    await put_outgoing_row(conn, self.cluster_id, out.name, out.kind, dict(out.config), stored, replace)
                where = SecurityDefinition.cluster_id == self.cluster_id
                rows = await conn.execute(select(SecurityDefinition.name, SecurityDefinition.id).where(where))
                ids: dict[str, int] = {name: found for name, found in rows}
                for change in plan.of("channel", "create", "update"):
                    ch = channels[change.name]
                    values = {"kind": ch.kind, "path": ch.path, "methods": list(ch.methods), "service": ch.service}
                    values.update(security_id=ids.get(ch.security or ""), options=dict(ch.options) or None)
                    await self._put(conn, Channel, ch.name, change.action, values)
                await _apply_definitions(conn, self.cluster_id, declaration, plan)
                for model, kind in (
                    (Channel, "channel"),
                    (SecurityDefinition, "security"),
                    (OutgoingConnection, "outgoing"),
                ):
                    if names := [c.name for c in plan.of(kind, "delete")]:
                        doomed = (model.cluster_id == self.cluster_id, model.name.in_(names))
                        await conn.execute(delete(model).where(*doomed))
        except IntegrityError as exc:
            message = f"{declaration.file}: what it declares changed in the cluster while it was applied;"
            raise Conflict(f"{message} apply it again") from exc

    async def _put(
        self,
        conn: AsyncConnection,
        model: type[Channel] | type[SecurityDefinition],
        name: str,
        action: str,
        values: dict[str, Any],
    ) -> None:
        if action == "create":
            await conn.execute(insert(model).values(cluster_id=self.cluster_id, name=name, **values))
            return
        where = (model.cluster_id == self.cluster_id, model.name == name)
        if (await conn.execute(update(model).where(*where).values(**values))).rowcount == 0:
            raise Conflict(f"'{name}' was deleted while the declaration was applied; apply it again")


async def _apply_definitions(conn: AsyncConnection, cluster_id: int, declaration: Declaration, plan: Plan) -> None:
    """The plan's topics, subscriptions, topic permissions and caches, in the caller's transaction. A definition made
    meanwhile is replaced (the file wins), one deleted meanwhile is what the plan wanted."""
    declared = {(d.kind, d.name): d for d in declaration.definitions()}
    for change in plan.changes:
        if (change.kind not in _DEFINED and change.kind != "topic_permission") or change.action == "unchanged":
            continue
        if change.action == "delete":
            with contextlib.suppress(NotFound):
                if change.kind == "topic_permission":
                    await delete_permission_row(conn, cluster_id, change.name)
                else:
                    await delete_named_row(conn, cluster_id, _DEFINED[change.kind], change.name)
        elif change.kind == "topic_permission":
            await put_permission_row(conn, cluster_id, declared[change.kind, change.name].stored())
        else:
            await put_named_row(
                conn, cluster_id, _DEFINED[change.kind], declared[change.kind, change.name].stored(), True
            )
