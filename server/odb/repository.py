"""The ODB repository: every read and write Splice makes, in one cluster's scope."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..channels.security import new_token, token_digest
from ..core.errors import Conflict, NotFound
from ..declare.reader import Declaration, Plan
from ..deploy.engine import ModuleRecord, ModuleSource
from .models import (
    Channel,
    Cluster,
    DeployedModule,
    Deployment,
    Lease,
    ModuleVersion,
    SecurityDefinition,
    Server,
    ServiceRow,
    Token,
)


class OdbDeployTransaction:
    """Writes of one deployment, inside one database transaction."""

    def __init__(self, connection: AsyncConnection, cluster_id: int) -> None:
        self.connection = connection
        self.cluster_id = cluster_id

    async def _new_sequence(self, action: str, by: str) -> int:
        result = await self.connection.execute(
            insert(Deployment).values(cluster_id=self.cluster_id, action=action, deployed_by=by)
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def _next_version(self, path: str) -> int:
        query = select(func.max(ModuleVersion.version)).where(
            ModuleVersion.cluster_id == self.cluster_id, ModuleVersion.path == path
        )
        current = (await self.connection.execute(query)).scalar()
        return int(current or 0) + 1

    async def record_deploy(
        self, modules: Sequence[tuple[ModuleSource, str, str]], by: str
    ) -> tuple[int, dict[str, int]]:
        sequence = await self._new_sequence("deploy", by)
        versions: dict[str, int] = {}
        for src, module, digest in modules:
            version = await self._next_version(src.path)
            result = await self.connection.execute(
                insert(ModuleVersion).values(
                    cluster_id=self.cluster_id,
                    path=src.path,
                    module=module,
                    version=version,
                    deployment_id=sequence,
                    action="deploy",
                    source=src.source,
                    sha256=digest,
                    deployed_by=by,
                    origin=src.origin,
                )
            )
            version_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            await self._set_current(src.path, module, version_id)
            versions[src.path] = version
        return sequence, versions

    async def record_services(self, services: dict[str, list[dict[str, Any]]]) -> None:
        for path, rows in services.items():
            await self._set_services(path, rows)

    async def _set_current(self, path: str, module: str, version_id: int) -> None:
        where = (DeployedModule.cluster_id == self.cluster_id, DeployedModule.path == path)
        await self.connection.execute(delete(DeployedModule).where(*where))
        await self.connection.execute(
            insert(DeployedModule).values(cluster_id=self.cluster_id, path=path, module=module, version_id=version_id)
        )

    async def _set_services(self, path: str, services: list[dict[str, Any]]) -> None:
        await self.connection.execute(
            delete(ServiceRow).where(ServiceRow.cluster_id == self.cluster_id, ServiceRow.path == path)
        )
        for svc in services:
            await self.connection.execute(
                insert(ServiceRow).values(
                    cluster_id=self.cluster_id, name=svc["name"], path=path, class_name=svc["class"], details=svc
                )
            )

    async def record_undeploy(self, paths: Sequence[str], by: str) -> int:
        sequence = await self._new_sequence("undeploy", by)
        for path in paths:
            current = await self.connection.execute(
                select(ModuleVersion.module, ModuleVersion.source)
                .join(DeployedModule, DeployedModule.version_id == ModuleVersion.id)
                .where(DeployedModule.cluster_id == self.cluster_id, DeployedModule.path == path)
            )
            row = current.first()
            if row is None:
                raise NotFound(f"not deployed: {path}")
            await self.connection.execute(
                insert(ModuleVersion).values(
                    cluster_id=self.cluster_id,
                    path=path,
                    module=row.module,
                    version=await self._next_version(path),
                    deployment_id=sequence,
                    action="undeploy",
                    source="",
                    sha256="",
                    deployed_by=by,
                )
            )
            await self.connection.execute(
                delete(DeployedModule).where(DeployedModule.cluster_id == self.cluster_id, DeployedModule.path == path)
            )
            await self._set_services(path, [])
        return sequence


class OdbRepository:
    """All ODB access of one cluster."""

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

    async def ensure_cluster(self) -> int:
        """Create the cluster's row (and its internal token) if missing; idempotent."""
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
        self.internal_token = str(internal)
        return self._cluster_id

    # -- deployments ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[OdbDeployTransaction]:
        """One deployment's writes; a clash with a concurrent deployment becomes ``Conflict``."""
        try:
            async with self.engine.begin() as conn:
                yield OdbDeployTransaction(conn, self.cluster_id)
        except IntegrityError as exc:
            raise Conflict("another deployment of the same modules was recorded at the same time") from exc
        except OperationalError as exc:
            text = str(exc.orig).lower()
            if any(word in text for word in ("locked", "deadlock", "busy", "serializ")):
                raise Conflict("the ODB was busy with another deployment at the same time") from exc
            raise

    def _current_query(self) -> Select[*tuple[ModuleVersion]]:
        return (
            select(ModuleVersion)
            .join(DeployedModule, DeployedModule.version_id == ModuleVersion.id)
            .where(DeployedModule.cluster_id == self.cluster_id)
            .order_by(ModuleVersion.path)
        )

    async def current_modules(self) -> list[ModuleRecord]:
        return [_record(r) for r in await self._all(self._current_query())]

    async def state(self) -> tuple[int, list[ModuleRecord]]:
        """The newest sequence and the modules deployed as of it, read in one transaction."""
        async with self.engine.begin() as conn:
            sequence = (
                await conn.execute(select(func.max(Deployment.id)).where(Deployment.cluster_id == self.cluster_id))
            ).scalar()
            rows = (await conn.execute(self._current_query())).all()
        return int(sequence or 0), [_record(r) for r in rows]

    async def heads(self, since: int) -> tuple[int, dict[str, tuple[int, str]], bool]:
        """The newest sequence, each deployed module's (version, sha256), and whether channels or security
        changed after ``since``: what a server needs to see if it is behind, without reading any source."""
        async with self.engine.begin() as conn:
            sequence = (
                await conn.execute(select(func.max(Deployment.id)).where(Deployment.cluster_id == self.cluster_id))
            ).scalar()
            if not sequence or sequence <= since:
                return int(sequence or 0), {}, False
            query = (
                select(ModuleVersion.path, ModuleVersion.version, ModuleVersion.sha256)
                .join(DeployedModule, DeployedModule.version_id == ModuleVersion.id)
                .where(DeployedModule.cluster_id == self.cluster_id)
            )
            heads = {r.path: (r.version, r.sha256) for r in (await conn.execute(query)).all()}
            actions = select(Deployment.id).where(
                Deployment.cluster_id == self.cluster_id,
                Deployment.id > since,
                Deployment.action.not_in(("deploy", "undeploy")),
            )
            config = (await conn.execute(actions.limit(1))).first() is not None
        return int(sequence), heads, config

    async def modules(self, paths: Sequence[str]) -> list[ModuleRecord]:
        """The deployed versions of ``paths`` (those still deployed), sources included."""
        if not paths:
            return []
        return [_record(r) for r in await self._all(self._current_query().where(ModuleVersion.path.in_(list(paths))))]

    async def version(self, path: str, version: int) -> ModuleRecord | None:
        query = select(ModuleVersion).where(
            ModuleVersion.cluster_id == self.cluster_id, ModuleVersion.path == path, ModuleVersion.version == version
        )
        rows = await self._all(query)
        return _record(rows[0]) if rows else None

    async def record_config_change(self, what: str, by: str) -> int:
        """A new sequence number for a change of channels or security, so that every server reloads them."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(Deployment).values(cluster_id=self.cluster_id, action=what[:20], deployed_by=by)
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    async def history(self, path: str) -> list[dict[str, Any]]:
        query = (
            select(ModuleVersion)
            .where(ModuleVersion.cluster_id == self.cluster_id, ModuleVersion.path == path)
            .order_by(ModuleVersion.version)
        )
        rows = await self._all(query)
        return [
            {
                "version": r.version,
                "action": r.action,
                "sequence": r.deployment_id,
                "sha256": r.sha256,
                "deployed_by": r.deployed_by,
                "deployed_at": _iso(r.created_at),
                "origin": r.origin,
            }
            for r in rows
        ]

    async def last_sequence(self) -> int:
        query = select(func.max(Deployment.id)).where(Deployment.cluster_id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    # -- servers ---------------------------------------------------------------------------------

    async def heartbeat(self, name: str, sequence: int) -> int:
        """Say ``name`` is alive and has applied ``sequence``; returns the newest sequence of the cluster."""
        now = datetime.now(UTC)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(Server)
                .where(Server.cluster_id == self.cluster_id, Server.name == name)
                .values(last_seen=now, last_sequence=sequence)
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
                "last_seen": _aware(r.last_seen),
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
                if row.holder != holder and _aware(row.expires_at) > now:  # type: ignore[operator]
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
        return {r.name: {"holder": r.holder, "expires_at": _aware(r.expires_at)} for r in await self._all(query)}

    async def register_server(self, name: str, url: str, pid: int, sequence: int) -> None:
        now = datetime.now(UTC)
        values = {"url": url, "pid": pid, "last_sequence": sequence, "started_at": now, "last_seen": now}
        async with self.engine.begin() as conn:
            where = (Server.cluster_id == self.cluster_id, Server.name == name)
            result = await conn.execute(update(Server).where(*where).values(**values))
            if result.rowcount == 0:
                await conn.execute(insert(Server).values(cluster_id=self.cluster_id, name=name, **values))

    # -- tokens ----------------------------------------------------------------------------------

    async def add_token(self, name: str, token_sha256: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(Token).where(Token.cluster_id == self.cluster_id, Token.name == name))
            await conn.execute(insert(Token).values(cluster_id=self.cluster_id, name=name, token_sha256=token_sha256))

    async def token_hashes(self) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(Token.token_sha256).where(Token.cluster_id == self.cluster_id))
            return {r[0] for r in rows}

    # -- security definitions --------------------------------------------------------------------

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
        self, name: str, path: str, methods: list[str], service: str, security: str | None
    ) -> None:
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
        values = {"name": name, "path": path, "methods": methods, "service": service, "security_id": security_id}
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

    async def apply_declared(self, declaration: Declaration, plan: Plan, secret_hashes: dict[str, str]) -> None:
        """Carry out ``plan`` (made for ``declaration``) in one transaction: all of it or nothing.

        ``secret_hashes`` holds the hashed secret of every security definition the plan creates or updates.
        """
        security = {s.name: s for s in declaration.security}
        channels = {c.name: c for c in declaration.channels}
        values: dict[str, Any]
        try:
            async with self.engine.begin() as conn:
                for change in plan.of("security", "create", "update"):
                    spec = security[change.name]
                    values = {"kind": spec.kind, "username": spec.username, "header": spec.header}
                    values["secret_hash"] = secret_hashes[spec.name]
                    await self._put(conn, SecurityDefinition, change.name, change.action, values)
                where = SecurityDefinition.cluster_id == self.cluster_id
                rows = await conn.execute(select(SecurityDefinition.name, SecurityDefinition.id).where(where))
                ids: dict[str, int] = {name: found for name, found in rows}
                for change in plan.of("channel", "create", "update"):
                    ch = channels[change.name]
                    values = {"path": ch.path, "methods": list(ch.methods), "service": ch.service}
                    values["security_id"] = ids.get(ch.security or "")
                    await self._put(conn, Channel, ch.name, change.action, values)
                for model, kind in ((Channel, "channel"), (SecurityDefinition, "security")):
                    if names := [c.name for c in plan.of(kind, "delete")]:
                        doomed = (model.cluster_id == self.cluster_id, model.name.in_(names))
                        await conn.execute(delete(model).where(*doomed))
        except IntegrityError as exc:
            message = f"{declaration.file}: channels or security changed while it was applied; apply it again"
            raise Conflict(message) from exc

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


def seen_within(server: dict[str, Any], within: float) -> bool:
    """Whether a row of ``servers()`` was seen alive in the last ``within`` seconds."""
    last_seen: datetime | None = server["last_seen"]
    return last_seen is not None and last_seen >= datetime.now(UTC) - timedelta(seconds=within)


def _record(r: Any) -> ModuleRecord:
    return ModuleRecord(
        r.path, r.module, r.version, r.source, r.sha256, r.deployment_id, r.deployed_by, _iso(r.created_at), r.origin
    )


def _aware(value: datetime | None) -> datetime | None:
    """SQLite and MariaDB hand back naive datetimes; they were stored as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()
