"""Deployments in the ODB: module versions, what is deployed now, and the cluster-wide sequence numbers.

A deployment's writes happen in one transaction (``OdbDeployTransaction``); the deployment engine reaches them
through the protocols of ``splice.server.deploy.engine``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Select, case, delete, exists, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from ..deploy.records import ModuleRecord, ModuleSource
from .models import DeployedModule, Deployment, ModuleVersion, ServiceRow
from .scope import ClusterScope, iso


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


class OdbDeployments(ClusterScope):
    """Deployments of one cluster: the module versions and what is deployed now."""

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

    async def changes(
        self, since: int, mine: Mapping[str, tuple[int, str]]
    ) -> tuple[int, dict[str, tuple[int, str]], bool, list[ModuleRecord]]:
        """What a server that applied ``since`` and holds ``mine`` (path -> (version, sha256)) needs to catch up, in
        one transaction of (usually) two queries: the newest sequence and whether channels or security changed after
        ``since``; each deployed module's head (version, sha256), with the source of those changed after ``since``;
        and the records of the modules whose head differs from ``mine`` (a server out of step with the ODB for
        another reason, a forced sync with ``since`` -1, gets those it lacks in a third query)."""
        cluster = Deployment.cluster_id == self.cluster_id
        newest = select(func.max(Deployment.id)).where(cluster).scalar_subquery()
        configured = exists().where(cluster, Deployment.id > since, Deployment.action.not_in(("deploy", "undeploy")))
        async with self.engine.begin() as conn:
            found = (await conn.execute(select(newest, configured))).one()
            sequence = int(found[0] or 0)
            if sequence <= since:
                return sequence, {}, False, []
            source = case((ModuleVersion.deployment_id > since, ModuleVersion.source), else_=None).label("source")
            query = (
                select(*(c for c in ModuleVersion.__table__.c if c.name != "source"), source)
                .join(DeployedModule, DeployedModule.version_id == ModuleVersion.id)
                .where(DeployedModule.cluster_id == self.cluster_id)
            )
            rows = (await conn.execute(query)).all()
            stale = [r for r in rows if mine.get(r.path) != (r.version, r.sha256)]
            records = [_record(r) for r in stale if r.source is not None]
            missing = [r.path for r in stale if r.source is None]
            if missing:
                rest = self._current_query().where(ModuleVersion.path.in_(missing))
                records += [_record(r) for r in (await conn.execute(rest)).all()]
        return sequence, {r.path: (r.version, r.sha256) for r in rows}, bool(found[1]), records

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
                "deployed_at": iso(r.created_at),
                "origin": r.origin,
            }
            for r in rows
        ]

    async def deployments(self, limit: int, before: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` changes recorded cluster-wide (before sequence ``before``), newest first: each one's
        action (``deploy``, ``undeploy``, or the configuration it changed: ``channel``, ``topic:orders``...), who
        made it, and the module paths it touched (none for a configuration change)."""
        query = select(Deployment).where(Deployment.cluster_id == self.cluster_id)
        if before is not None:
            query = query.where(Deployment.id < before)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(Deployment.id.desc()).limit(limit))).all()
            touched = select(ModuleVersion.deployment_id, ModuleVersion.path, ModuleVersion.origin).where(
                ModuleVersion.cluster_id == self.cluster_id,
                ModuleVersion.deployment_id.in_([r.id for r in rows]),
            )
            modules = (await conn.execute(touched.order_by(ModuleVersion.path))).all() if rows else []
        paths: dict[int, list[str]] = {}
        origins: dict[int, str] = {}
        for m in modules:
            paths.setdefault(m.deployment_id, []).append(m.path)
            if m.origin and m.deployment_id not in origins:
                origins[m.deployment_id] = m.origin
        return [
            {
                "sequence": r.id,
                "action": r.action,
                "paths": paths.get(r.id, []),
                "deployed_by": r.deployed_by,
                "deployed_at": iso(r.created_at) or None,
                "origin": origins.get(r.id),
            }
            for r in rows
        ]

    async def stored_version(self, path: str, version: int) -> dict[str, Any] | None:
        """Version ``version`` of ``path`` as stored, with its source (``None`` for an undeploy), or ``None``."""
        query = select(ModuleVersion).where(
            ModuleVersion.cluster_id == self.cluster_id, ModuleVersion.path == path, ModuleVersion.version == version
        )
        rows = await self._all(query)
        if not rows:
            return None
        r = rows[0]
        return {
            "path": r.path,
            "module": r.module,
            "version": r.version,
            "action": r.action,
            "sequence": r.deployment_id,
            "sha256": r.sha256,
            "deployed_by": r.deployed_by,
            "deployed_at": iso(r.created_at) or None,
            "origin": r.origin,
            "source": r.source if r.action == "deploy" else None,
        }

    async def last_sequence(self) -> int:
        query = select(func.max(Deployment.id)).where(Deployment.cluster_id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)


def _record(r: Any) -> ModuleRecord:
    return ModuleRecord(
        r.path, r.module, r.version, r.source, r.sha256, r.deployment_id, r.deployed_by, iso(r.created_at), r.origin
    )
