"""Pub/sub messages and deliveries in the ODB: the broker's ``MessageStore`` (``splice.server.pubsub.store``).

A message is one row of ``pubsub_messages``; each subscription it goes to has a row of ``pubsub_deliveries``
(its priority copied, so that claims read one index in order). A delivery is ``ready`` (waiting; claimed while
``lease_until_us`` is ahead) or ``dead``; acknowledging deletes it, and ``sweep`` later deletes messages no
delivery refers to. Claiming is ``_pubsub_claim``. Every method is one transaction.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, case, delete, exists, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..pubsub.store import Delivery, Depth, NewMessage, Published, State
from . import _pubsub_claim as claiming
from ._pubsub_claim import CLUSTER, MESSAGE_COLUMNS, SUBSCRIPTION, ClaimRequest, message_of, now_us, write_lock
from .models import Delivery as DeliveryRow
from .models import Message as MessageRow
from .models import MessageKey
from .scope import ClusterScope

D = DeliveryRow
M = MessageRow

KEY_RETENTION_US = 30 * 86_400 * 1_000_000
"""Idempotency keys are kept this long at most (the longest window a topic may have)."""
SWEEP_BATCH = 1000
"""Messages deleted per transaction by ``sweep``."""
ERROR_LIMIT = 4000
"""Characters of an error kept in ``last_error``."""


MESSAGE_FIELDS: tuple[str, ...] = ("cluster_id", "topic", "payload", "is_json", "headers", "priority")
MESSAGE_FIELDS += ("expires_us", "publisher", "cid", "key", "published_us")
"""What a publish writes of a message (``OdbMessages._row``)."""
INSERT_MESSAGE = insert(M)
INSERT_DELIVERIES = insert(D)
ACK = delete(D).where(
    D.cluster_id == CLUSTER, D.subscription == SUBSCRIPTION, D.id.in_(bindparam("ids", expanding=True))
)


@functools.cache
def _publish_at_once() -> Any:
    """PostgreSQL: insert a message (``m_<column>`` values) and a delivery of it per name of ``names``. Built at
    the first such publish, not at import: the PostgreSQL dialect it needs for ``ARRAY`` costs a server or a
    scheduler on SQLite ~70 ms of CPU and ~2 MiB at every start."""
    from sqlalchemy.dialects.postgresql import ARRAY

    columns = M.__table__.c
    values = {name: bindparam(f"m_{name}", type_=columns[name].type) for name in MESSAGE_FIELDS}
    new = insert(M).values(values).returning(M.id).cte("new_message")
    deliveries = {
        D.message_id: new.c.id,
        D.cluster_id: values["cluster_id"],
        D.subscription: func.unnest(bindparam("names", type_=ARRAY(String))),
        D.priority: values["priority"],
        D.state: literal("ready"),
        D.attempts: literal(0),
        D.next_us: literal(0, BigInteger),
        D.lease_until_us: literal(0, BigInteger),
    }
    return insert(D).from_select(list(deliveries), select(*deliveries.values())).returning(D.message_id)


class _KeyRace(Exception):
    """Another publish replaced the same old idempotency key at once: try again (it will be a duplicate)."""


class OdbMessages(ClusterScope):
    """Messages and deliveries of one cluster (``splice.server.pubsub.store.MessageStore``)."""

    async def publish(self, message: NewMessage, subscriptions: Sequence[str], key_window_us: int) -> Published:
        names = list(dict.fromkeys(subscriptions))
        if not names:
            return Published(0)
        if message.key is None and self.engine.dialect.name == "postgresql":
            async with self._autocommit.connect() as conn:
                return await self._publish_at_once(conn, message, names)
        for attempt in range(3):
            try:
                async with self.engine.begin() as conn:
                    return await self._publish(conn, message, names, key_window_us)
            except (IntegrityError, _KeyRace):
                # Two publishes with one key at once: the unique key lets one in; the other, again, is a repeat.
                if message.key is None or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @functools.cached_property
    def _autocommit(self) -> AsyncEngine:
        """The engine in autocommit: on PostgreSQL, one statement is a transaction without BEGIN and COMMIT."""
        return self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.asynccontextmanager
    async def _one_statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection to run one statement in (atomic by itself): in autocommit on PostgreSQL (a round trip, not
        three); a transaction elsewhere (SQLite commits as cheaply, MariaDB would pay a round trip to switch)."""
        if self.engine.dialect.name == "postgresql":
            async with self._autocommit.connect() as conn:
                yield conn
        else:
            async with self.engine.begin() as conn:
                yield conn

    def _row(self, message: NewMessage, now: int) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "topic": message.topic,
            "payload": message.payload,
            "is_json": message.is_json,
            "headers": dict(message.headers),
            "priority": message.priority,
            "expires_us": message.expires_us,
            "publisher": message.publisher[:200],
            "cid": message.cid[:64],
            "key": message.key,
            "published_us": message.published_us or now,
        }

    async def _publish_at_once(self, conn: AsyncConnection, message: NewMessage, names: list[str]) -> Published:
        """PostgreSQL: the message and its deliveries in one statement (the message's insert a CTE)."""
        values = {f"m_{key}": value for key, value in self._row(message, now_us()).items()}
        inserted = await conn.execute(_publish_at_once(), {**values, "names": names})
        return Published(int(inserted.scalars().first() or 0))

    async def _publish(
        self, conn: AsyncConnection, message: NewMessage, names: list[str], key_window_us: int
    ) -> Published:
        now = now_us()
        keyed = message.key is not None and key_window_us > 0
        seen = None
        if keyed:
            await write_lock(conn)
            where = (MessageKey.cluster_id == self.cluster_id, MessageKey.topic == message.topic)
            query = select(MessageKey.id, MessageKey.message_id, MessageKey.created_us).where(
                *where, MessageKey.key == message.key
            )
            seen = (await conn.execute(query)).first()
            if seen is not None and seen.created_us >= now - key_window_us:
                return Published(int(seen.message_id), duplicate=True)
        inserted = await conn.execute(INSERT_MESSAGE, self._row(message, now))
        message_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        if keyed:
            await self._remember_key(conn, message, message_id, seen, now)
        deliveries = [
            {
                "cluster_id": self.cluster_id,
                "subscription": name,
                "message_id": message_id,
                "priority": message.priority,
                "state": "ready",
                "attempts": 0,
                "next_us": 0,
                "lease_until_us": 0,
            }
            for name in names
        ]
        await conn.execute(INSERT_DELIVERIES, deliveries)
        return Published(message_id)

    async def _remember_key(
        self, conn: AsyncConnection, message: NewMessage, message_id: int, seen: Any, now: int
    ) -> None:
        if seen is None:
            values = {"cluster_id": self.cluster_id, "topic": message.topic, "key": message.key}
            await conn.execute(insert(MessageKey).values(**values, message_id=message_id, created_us=now))
            return
        # Past its window: the key now stands for this message (unless another publish replaced it meanwhile).
        statement = (
            update(MessageKey)
            .where(MessageKey.id == seen.id, MessageKey.created_us == seen.created_us)
            .values(message_id=message_id, created_us=now)
        )
        if (await conn.execute(statement)).rowcount != 1:
            raise _KeyRace

    async def claim(
        self, subscription: str, limit: int, holder: str, lease_us: int, ordered: bool, delivery_limit: int
    ) -> list[Delivery]:
        if limit <= 0:
            return []
        request = ClaimRequest(self.cluster_id, subscription, limit, holder[:200], lease_us, ordered, delivery_limit)
        async with self.engine.begin() as conn:
            return await claiming.claim(conn, request)

    def _of(self, subscription: str) -> tuple[Any, ...]:
        return (D.cluster_id == self.cluster_id, D.subscription == subscription)

    async def ack(self, subscription: str, ids: Sequence[int]) -> int:
        if not ids:
            return 0
        async with self._one_statement() as conn:
            result = await conn.execute(
                ACK, {"cluster": self.cluster_id, "subscription": subscription, "ids": list(ids)}
            )
        return int(result.rowcount or 0)

    async def fail(self, subscription: str, delivery: int, error: str, retry_at_us: int | None) -> None:
        values: dict[str, Any] = {"holder": None, "lease_until_us": 0, "last_error": error[:ERROR_LIMIT]}
        if retry_at_us is None:
            values.update(state="dead", dead_us=now_us())
        else:
            values.update(next_us=retry_at_us)
        statement = update(D).where(*self._of(subscription), D.id == delivery, D.state == "ready").values(values)
        async with self._one_statement() as conn:
            await conn.execute(statement)

    async def release(self, subscription: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        attempts = case((D.attempts > 0, D.attempts - 1), else_=0)
        statement = (
            update(D)
            .where(*self._of(subscription), D.id.in_(list(ids)), D.state == "ready")
            .values(holder=None, lease_until_us=0, attempts=attempts)
        )
        async with self._one_statement() as conn:
            await conn.execute(statement)

    async def depths(self, subscriptions: Sequence[str] | None = None) -> dict[str, Depth]:
        now = now_us()
        leased = func.sum(case((D.lease_until_us > now, 1), else_=0)).label("leased")
        counts = (
            select(D.subscription, D.state, func.count().label("n"), leased, func.min(D.message_id).label("first"))
            .where(D.cluster_id == self.cluster_id)
            .group_by(D.subscription, D.state)
        )
        if subscriptions is not None:
            counts = counts.where(D.subscription.in_(list(subscriptions)))
        # The oldest message of each group is the one published first (ids grow with publishing): one row read per
        # group, not a join of the whole queue.
        group = counts.subquery()
        query = select(group.c.subscription, group.c.state, group.c.n, group.c.leased, M.published_us).join(
            M, M.id == group.c.first, isouter=True
        )
        found: dict[str, dict[str, Any]] = {name: {} for name in subscriptions or ()}
        for name, state, count, in_flight, oldest in await self._all(query):
            depth = found.setdefault(name, {})
            if state == "dead":
                depth["dead"] = int(count)
            else:
                depth.update(ready=int(count) - int(in_flight or 0), in_flight=int(in_flight or 0))
                depth["oldest_us"] = None if oldest is None else int(oldest)
        return {name: Depth(name, **values) for name, values in found.items()}

    async def peek(self, subscription: str, state: State, limit: int, after: int = 0) -> list[Delivery]:
        query = (
            select(D.id, D.attempts, D.state, D.last_error, D.holder, D.lease_until_us, *MESSAGE_COLUMNS)
            .join(M, M.id == D.message_id)
            .where(*self._of(subscription), D.state == state)
            .order_by(D.priority.desc(), D.id)
            .limit(max(limit, 0))
        )
        if after:
            # The page after delivery ``after`` in claim order; if it is gone meanwhile, the ids above it.
            priority = (await self._all(select(D.priority).where(*self._of(subscription), D.id == after))) or None
            if priority is None:
                query = query.where(D.id > after)
            else:
                before = priority[0][0]
                query = query.where((D.priority < before) | ((D.priority == before) & (D.id > after)))
        return [
            Delivery(
                id=int(row.id),
                subscription=subscription,
                message=message_of(row),
                attempt=int(row.attempts),
                state=row.state,
                last_error=row.last_error,
                holder=row.holder,
                lease_until_us=int(row.lease_until_us),
            )
            for row in await self._all(query)
        ]

    async def purge(self, subscription: str, state: State | None) -> int:
        statement = delete(D).where(*self._of(subscription))
        if state is not None:
            statement = statement.where(D.state == state)
        async with self._one_statement() as conn:
            return int((await conn.execute(statement)).rowcount or 0)

    async def replay(self, subscription: str, ids: Sequence[int] | None) -> int:
        statement = update(D).where(*self._of(subscription), D.state == "dead")
        if ids is not None:
            if not ids:
                return 0
            statement = statement.where(D.id.in_(list(ids)))
        values = {"state": "ready", "attempts": 0, "next_us": 0, "holder": None, "lease_until_us": 0}
        async with self._one_statement() as conn:
            result = await conn.execute(statement.values(**values, dead_us=None, last_error=None))
        return int(result.rowcount or 0)

    async def sweep(self, now_us: int) -> int:
        expired = select(M.id).where(M.cluster_id == self.cluster_id, M.expires_us < now_us)
        async with self.engine.begin() as conn:
            gone = int((await conn.execute(delete(D).where(D.message_id.in_(expired)))).rowcount or 0)
            statement = delete(MessageKey).where(
                MessageKey.cluster_id == self.cluster_id, MessageKey.created_us < now_us - KEY_RETENTION_US
            )
            gone += int((await conn.execute(statement)).rowcount or 0)
        return gone + await self._sweep_messages()

    async def _sweep_messages(self) -> int:
        """Delete messages no delivery refers to, a batch per transaction (in id order, one pass)."""
        orphan = ~exists().where(D.message_id == M.id)
        gone, after = 0, 0
        while True:
            query = (
                select(M.id)
                .where(M.cluster_id == self.cluster_id, M.id > after, orphan)
                .order_by(M.id)
                .limit(SWEEP_BATCH)
            )
            async with self.engine.begin() as conn:
                ids = [int(row[0]) for row in (await conn.execute(query)).all()]
                if ids:
                    # Checked again in the delete: nothing refers to them, whatever happened since the read.
                    result = await conn.execute(delete(M).where(M.id.in_(ids), orphan))
                    gone += int(result.rowcount or 0)
            if len(ids) < SWEEP_BATCH:
                return gone
            after = ids[-1]
