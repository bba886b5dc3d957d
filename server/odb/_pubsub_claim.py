"""Claiming deliveries (``OdbMessages.claim``): what is due, in order, taken so that two servers never share one.

PostgreSQL and MariaDB lock rows. An unordered claim takes the first due rows nobody else has locked
(``FOR UPDATE SKIP LOCKED``), so servers claiming at once each get rows of their own without waiting. An ordered
claim first locks its subscription's row, skipping it if locked (another server is claiming: this one gets
nothing), so one claimer at a time reads the head of the queue. SQLite has one writer: the claim's transaction
takes the write lock first (``BEGIN IMMEDIATE``), so its reads are current and no other claim runs until it
commits. Which rows to take of those read is ``sort_out``, a pure function.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, BindParameter, Integer, Select, String, bindparam, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from ..pubsub.store import Delivery, Message, decode
from .models import Delivery as DeliveryRow
from .models import Message as MessageRow
from .models import Subscription as SubscriptionRow

D = DeliveryRow
M = MessageRow

DUE_COLUMNS = (D.id, D.message_id, D.attempts, D.next_us, D.lease_until_us, D.last_error)
MESSAGE_COLUMNS = (
    M.id.label("m_id"),
    M.topic,
    M.payload,
    M.is_json,
    M.headers,
    M.priority.label("m_priority"),
    M.expires_us,
    M.publisher,
    M.cid,
    M.key,
    M.published_us,
)


def now_us() -> int:
    return time.time_ns() // 1000


def dialect(conn: AsyncConnection) -> str:
    """``sqlite``, ``postgresql`` or ``mariadb`` (MySQL too)."""
    name = conn.dialect.name
    return "mariadb" if name in ("mysql", "mariadb") else name


async def write_lock(conn: AsyncConnection) -> None:
    """On SQLite, take the database's write lock now, so that what this transaction reads stays current.

    Python's sqlite3 begins a transaction only before the first write: a read before it would see the database
    as it was, while another writer changes it. Elsewhere, row locks do this and nothing happens here."""
    if conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def message_of(row: Any) -> Message:
    """A message from a row of ``MESSAGE_COLUMNS``."""
    return Message(
        id=int(row.m_id),
        topic=row.topic,
        data=decode(bytes(row.payload), bool(row.is_json)),
        headers=dict(row.headers or {}),
        priority=int(row.m_priority),
        expires_us=row.expires_us,
        publisher=row.publisher,
        cid=row.cid,
        key=row.key,
        published_us=int(row.published_us),
    )


@dataclass
class Sorted:
    """What to do with the due rows read: claim, drop (message expired), dead-letter (with why)."""

    claimed: list[Any] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    held_back: bool = False
    """An ordered claim stopped at a delivery waiting for its retry."""


def sort_out(
    rows: Iterable[Any], expiry: Mapping[int, int | None], now: int, limit: int, delivery_limit: int
) -> Sorted:
    """Go through ``rows`` in order: drop those whose message expired (or is gone), dead-letter those at the
    delivery limit, claim the rest up to ``limit``; stop at the first that is not due (an ordered claim reads
    those too: a retry waiting holds back the ones behind it)."""
    out = Sorted()
    for row in rows:
        if row.message_id not in expiry or (expiry[row.message_id] or now) < now:
            out.expired.append(row.id)
        elif row.next_us > now:
            out.held_back = True
            break
        elif row.attempts >= delivery_limit:
            if row.lease_until_us:
                why = f"its holder stopped answering after {row.attempts} attempts"
            else:
                why = f"it reached the delivery limit ({row.attempts} attempts of {delivery_limit})"
            out.dead.append((row.id, why))
        else:
            out.claimed.append(row)
            if len(out.claimed) >= limit:
                break
    return out


@dataclass(frozen=True)
class ClaimRequest:
    cluster_id: int
    subscription: str
    limit: int
    holder: str
    lease_us: int
    ordered: bool
    delivery_limit: int


# Statements are built once, their values bound at each execution: building and keying a statement for
# SQLAlchemy's compiled cache costs more than running it, and claims run back to back.
CLUSTER: BindParameter[int] = bindparam("cluster", type_=Integer)
SUBSCRIPTION: BindParameter[str] = bindparam("subscription", type_=String)
NOW: BindParameter[int] = bindparam("now", type_=BigInteger)
READY = (D.cluster_id == CLUSTER, D.subscription == SUBSCRIPTION, D.state == "ready")
IN_ORDER = (D.priority.desc(), D.id)
_NAMED = select(SubscriptionRow.id).where(SubscriptionRow.cluster_id == CLUSTER, SubscriptionRow.name == SUBSCRIPTION)
LOCK_SUBSCRIPTION = _NAMED.with_for_update(skip_locked=True)
LOCK_FIRST = select(D.id).where(*READY).order_by(*IN_ORDER).limit(1).with_for_update()
MESSAGES = select(*MESSAGE_COLUMNS).where(M.id.in_(bindparam("ids", expanding=True)))
TAKE = (
    update(D)
    .where(D.id.in_(bindparam("ids", expanding=True)))
    .values(holder=bindparam("new_holder"), lease_until_us=bindparam("until"), attempts=D.attempts + 1)
)
DROP = delete(D).where(D.id.in_(bindparam("ids", expanding=True)))
BURY = (
    update(D)
    .where(D.id == bindparam("row"))
    .values(state="dead", dead_us=NOW, holder=None, lease_until_us=0, last_error=bindparam("why"))
)


@functools.cache
def due_query(ordered: bool, first: bool, kind: str) -> Select[Any]:
    """The first ``limit`` claimable rows in order (and their messages, but on MariaDB).

    Unordered: due rows only, locked (skipping those another claimer locked). Ordered: every unclaimed row, the
    ones waiting for a retry too (the first of those stops the claim); the subscription's lock covers them. The
    first read of an ordered claim also says (``busy``) whether another holder has a lease now.
    PostgreSQL and SQLite read the messages in the same query; MariaDB cannot lock one table of a join (a
    message row locked by one subscription's claim would make another's skip it), so it reads them after."""
    joined = kind != "mariadb"
    columns: tuple[Any, ...] = DUE_COLUMNS + MESSAGE_COLUMNS if joined else DUE_COLUMNS
    if ordered and first:
        other = aliased(D)
        mine = (other.cluster_id == CLUSTER, other.subscription == SUBSCRIPTION, other.state == "ready")
        columns += (exists().where(*mine, other.lease_until_us > NOW).label("busy"),)
    query: Select[Any] = select(*columns)
    if joined:
        query = query.join(M, M.id == D.message_id, isouter=True)
    query = query.where(*READY, D.lease_until_us <= NOW)
    if not ordered:
        query = query.where(D.next_us <= NOW)
    query = query.order_by(*IN_ORDER).limit(bindparam("limit", type_=Integer))
    if not ordered and kind != "sqlite":
        query = query.with_for_update(skip_locked=True, of=D if joined else None)
    return query


async def claim(conn: AsyncConnection, request: ClaimRequest) -> list[Delivery]:
    """Claim up to ``request.limit`` deliveries in ``conn``'s transaction (see ``MessageStore.claim``)."""
    kind = dialect(conn)
    if kind == "sqlite":
        await write_lock(conn)
    elif kind == "mariadb":
        # InnoDB's default (repeatable read) would keep reading the snapshot of the transaction's first read after
        # waiting for a lock, and lock gaps between the rows it scans (holding back publishers' inserts).
        await conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
    scope = {"cluster": request.cluster_id, "subscription": request.subscription}
    if kind != "sqlite" and request.ordered and not await _serialize(conn, scope):
        return []
    now = now_us()
    until = now + request.lease_us
    taken: list[Delivery] = []
    while len(taken) < request.limit:
        want = request.limit - len(taken)
        query = due_query(request.ordered, not taken, kind)
        rows = (await conn.execute(query, {**scope, "now": now, "limit": want})).all()
        if request.ordered and not taken and rows and rows[0].busy:
            return []  # another holder's lease runs: an ordered subscription waits for it
        if kind == "mariadb":
            messages = await messages_by_id(conn, {row.message_id for row in rows})
        else:
            messages = {row.message_id: message_of(row) for row in rows if row.m_id is not None}
        expiry = {message_id: message.expires_us for message_id, message in messages.items()}
        plan = sort_out(rows, expiry, now, want, request.delivery_limit)
        await _apply(conn, plan, request.holder, until, now)
        taken += [
            Delivery(
                id=int(row.id),
                subscription=request.subscription,
                message=messages[row.message_id],
                attempt=int(row.attempts) + 1,
                last_error=row.last_error,
                holder=request.holder,
                lease_until_us=until,
            )
            for row in plan.claimed
        ]
        if plan.held_back or len(rows) < want:
            break
    return taken


async def _serialize(conn: AsyncConnection, scope: dict[str, Any]) -> bool:
    """Lock the subscription for an ordered claim; ``False`` when another claimer holds it (or nothing waits).

    Its row in ``pubsub_subscriptions`` is the lock. Deliveries of a name with no definition (left over, or made
    by a test) lock their first ready delivery instead, waiting for it."""
    if (await conn.execute(LOCK_SUBSCRIPTION, scope)).first() is not None:
        return True
    if (await conn.execute(_NAMED, scope)).first() is not None:
        return False
    return (await conn.execute(LOCK_FIRST, scope)).first() is not None


async def messages_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, Message]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = (await conn.execute(MESSAGES, {"ids": wanted})).all()
    return {int(row.m_id): message_of(row) for row in rows}


async def _apply(conn: AsyncConnection, plan: Sorted, holder: str, until: int, now: int) -> None:
    if plan.claimed:
        ids = [row.id for row in plan.claimed]
        await conn.execute(TAKE, {"ids": ids, "new_holder": holder, "until": until})
    if plan.expired:
        await conn.execute(DROP, {"ids": plan.expired})
    if plan.dead:
        await conn.execute(BURY, [{"row": row, "why": why, "now": now} for row, why in plan.dead])
