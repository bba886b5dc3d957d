"""Pub/sub topics, subscriptions and topic permissions, and named caches, as the ODB keeps their definitions.

Each is a spec (``splice.server.pubsub.specs``, ``splice.server.cache.specs``) stored as its name plus the rest
in ``config``; reads give back the spec's JSON form (a dict ``model_validate`` takes). The ``*_row`` functions
work in a caller's transaction (``splice apply`` changes everything in one). Messages and deliveries are
``OdbMessages`` (``pubsub``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from .models import CacheDefinition, Delivery, Subscription, Topic, TopicPermission
from .scope import ClusterScope

NamedTable = type[Topic] | type[Subscription] | type[CacheDefinition]
_WHAT: dict[Any, str] = {Topic: "topic", Subscription: "subscription", CacheDefinition: "cache"}


def _spec(table: NamedTable, row: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": row.name, **dict(row.config)}
    if table is Subscription:
        spec.update(topic=row.topic, service=row.service)
    return spec


def _columns(table: NamedTable, spec: dict[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in spec.items() if k not in ("name", "topic", "service")}
    values: dict[str, Any] = {"config": config}
    if table is Subscription:
        values.update(topic=spec["topic"], service=spec.get("service"))
    return values


async def put_named_row(
    conn: AsyncConnection, cluster_id: int, table: NamedTable, spec: dict[str, Any], replace: bool
) -> bool:
    """Create the definition ``spec`` (a spec's JSON form) or, with ``replace``, change it; whether it was created."""
    where = (table.cluster_id == cluster_id, table.name == spec["name"])
    found = (await conn.execute(select(table.id).where(*where))).first()
    values = _columns(table, spec)
    if found is None:
        await conn.execute(insert(table).values(cluster_id=cluster_id, name=spec["name"], **values))
        return True
    if not replace:
        raise Conflict(f"{_WHAT[table]} '{spec['name']}' already exists")
    await conn.execute(update(table).where(table.id == found.id).values(**values))
    return False


async def delete_named_row(conn: AsyncConnection, cluster_id: int, table: NamedTable, name: str) -> None:
    """Delete a definition (a subscription's deliveries with it); ``NotFound`` if there is none of that name."""
    result = await conn.execute(delete(table).where(table.cluster_id == cluster_id, table.name == name))
    if result.rowcount == 0:
        raise NotFound(f"no {_WHAT[table]} named '{name}'")
    if table is Subscription:
        await conn.execute(delete(Delivery).where(Delivery.cluster_id == cluster_id, Delivery.subscription == name))


async def put_permission_row(conn: AsyncConnection, cluster_id: int, spec: dict[str, Any]) -> bool:
    """Set what security definition ``spec["security"]`` may publish and subscribe to; whether it was new."""
    where = (TopicPermission.cluster_id == cluster_id, TopicPermission.security == spec["security"])
    values = {"publish": list(spec.get("publish", [])), "subscribe": list(spec.get("subscribe", []))}
    found = (await conn.execute(select(TopicPermission.id).where(*where))).first()
    if found is None:
        await conn.execute(insert(TopicPermission).values(cluster_id=cluster_id, security=spec["security"], **values))
        return True
    await conn.execute(update(TopicPermission).where(TopicPermission.id == found.id).values(**values))
    return False


async def delete_permission_row(conn: AsyncConnection, cluster_id: int, security: str) -> None:
    where = (TopicPermission.cluster_id == cluster_id, TopicPermission.security == security)
    if (await conn.execute(delete(TopicPermission).where(*where))).rowcount == 0:
        raise NotFound(f"no topic permissions for security definition '{security}'")


class OdbTopics(ClusterScope):
    """Topics, subscriptions, topic permissions and caches of one cluster (their definitions)."""

    async def _list_named(self, table: NamedTable) -> list[dict[str, Any]]:
        rows = await self._all(select(table).where(table.cluster_id == self.cluster_id).order_by(table.name))
        return [_spec(table, r) for r in rows]

    async def _get_named(self, table: NamedTable, name: str) -> dict[str, Any]:
        rows = await self._all(select(table).where(table.cluster_id == self.cluster_id, table.name == name))
        if not rows:
            raise NotFound(f"no {_WHAT[table]} named '{name}'")
        return _spec(table, rows[0])

    async def _put_named(self, table: NamedTable, spec: dict[str, Any], replace: bool) -> bool:
        try:
            async with self.engine.begin() as conn:
                return await put_named_row(conn, self.cluster_id, table, spec, replace)
        except IntegrityError as exc:  # made by another server between the look and the insert
            raise Conflict(f"{_WHAT[table]} '{spec['name']}' already exists") from exc

    async def _delete_named(self, table: NamedTable, name: str) -> None:
        async with self.engine.begin() as conn:
            await delete_named_row(conn, self.cluster_id, table, name)

    async def list_topics(self) -> list[dict[str, Any]]:
        return await self._list_named(Topic)

    async def get_topic(self, name: str) -> dict[str, Any]:
        return await self._get_named(Topic, name)

    async def put_topic(self, spec: dict[str, Any], replace: bool = False) -> bool:
        return await self._put_named(Topic, spec, replace)

    async def delete_topic(self, name: str) -> None:
        await self._delete_named(Topic, name)

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        return await self._list_named(Subscription)

    async def get_subscription(self, name: str) -> dict[str, Any]:
        return await self._get_named(Subscription, name)

    async def put_subscription(self, spec: dict[str, Any], replace: bool = False) -> bool:
        return await self._put_named(Subscription, spec, replace)

    async def delete_subscription(self, name: str) -> None:
        """Delete the subscription and every message waiting in it (dead letters too)."""
        await self._delete_named(Subscription, name)

    async def list_caches(self) -> list[dict[str, Any]]:
        return await self._list_named(CacheDefinition)

    async def get_cache(self, name: str) -> dict[str, Any]:
        return await self._get_named(CacheDefinition, name)

    async def put_cache(self, spec: dict[str, Any], replace: bool = False) -> bool:
        return await self._put_named(CacheDefinition, spec, replace)

    async def delete_cache(self, name: str) -> None:
        await self._delete_named(CacheDefinition, name)

    async def list_permissions(self) -> list[dict[str, Any]]:
        where = TopicPermission.cluster_id == self.cluster_id
        rows = await self._all(select(TopicPermission).where(where).order_by(TopicPermission.security))
        return [{"security": r.security, "publish": list(r.publish), "subscribe": list(r.subscribe)} for r in rows]

    async def put_permission(self, spec: dict[str, Any]) -> bool:
        async with self.engine.begin() as conn:
            return await put_permission_row(conn, self.cluster_id, spec)

    async def delete_permission(self, security: str) -> None:
        async with self.engine.begin() as conn:
            await delete_permission_row(conn, self.cluster_id, security)
