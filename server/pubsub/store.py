"""What the broker needs of persistent storage (``splice.server.odb.OdbMessages`` is it), and what it hands back.

Every time is integer microseconds since the epoch (UTC). A message is stored once; each subscription it goes
to has a *delivery* of it, claimed by a holder (a server's deliverer, a REST puller, a WebSocket client) for a
lease, then acknowledged (gone), failed (retried later, or dead-lettered past the limit), or left to expire
(the lease runs out: its holder died, and another claims it; at-least-once).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from ..core.jsonvalues import dumps

State = Literal["ready", "dead"]


def encode(data: Any) -> tuple[bytes, bool]:
    """A payload as stored: ``bytes`` as they are, anything else as UTF-8 JSON (``is_json``)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), False
    return dumps(data), True  # valid JSON or a ValueError naming the place (a set, NaN, a cycle, an object)


def decode(payload: bytes, is_json: bool) -> Any:
    return json.loads(payload) if is_json else payload


def moment(us: int | None) -> str | None:
    """Microseconds since the epoch as ISO-8601 (UTC)."""
    return None if us is None else datetime.fromtimestamp(us / 1e6, UTC).isoformat()


@dataclass(frozen=True)
class NewMessage:
    """A message to store: its payload already encoded (``encode``)."""

    topic: str
    payload: bytes
    is_json: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    expires_us: int | None = None
    publisher: str = ""
    cid: str = ""
    key: str | None = None
    published_us: int = 0


@dataclass(frozen=True)
class Message:
    id: int
    topic: str
    data: Any
    """The payload: the JSON value published, or ``bytes``."""
    headers: Mapping[str, str]
    priority: int
    expires_us: int | None
    publisher: str
    cid: str
    key: str | None
    published_us: int

    @property
    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else len(encode(self.data)[0])

    def as_json(self) -> dict[str, Any]:
        """The message as REST, WebSocket and the admin API show it (bytes as base64, ``encoding`` says so)."""
        binary = isinstance(self.data, bytes)
        return {
            "id": self.id,
            "topic": self.topic,
            "data": base64.b64encode(self.data).decode() if binary else self.data,
            "encoding": "base64" if binary else "json",
            "headers": dict(self.headers),
            "priority": self.priority,
            "expires_at": moment(self.expires_us),
            "publisher": self.publisher,
            "cid": self.cid,
            "key": self.key,
            "published_at": moment(self.published_us),
        }


@dataclass(frozen=True)
class Delivery:
    """One message for one subscription, as claimed (or peeked at)."""

    id: int
    """What an acknowledgement names."""
    subscription: str
    message: Message
    attempt: int
    """Which attempt this is (1 the first time); of a delivery peeked at, how many were made (0: never tried)."""
    state: State = "ready"
    last_error: str | None = None
    holder: str | None = None
    lease_until_us: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "delivery": self.id,
            "subscription": self.subscription,
            "attempt": self.attempt,
            "state": self.state,
            "last_error": self.last_error,
            "message": self.message.as_json(),
        }


@dataclass(frozen=True)
class Depth:
    """A subscription's queue now."""

    subscription: str
    ready: int = 0
    """Waiting (retries included), not claimed now."""
    in_flight: int = 0
    """Claimed, lease not run out."""
    dead: int = 0
    oldest_us: int | None = None
    """When the oldest waiting or claimed message was published."""

    def as_json(self, now_us: int) -> dict[str, Any]:
        age = None if self.oldest_us is None else round(max(now_us - self.oldest_us, 0) / 1e6, 3)
        return {"ready": self.ready, "in_flight": self.in_flight, "dead": self.dead, "oldest_age": age}


@dataclass(frozen=True)
class Published:
    """What a publish stored: the message's id, and whether its idempotency key made it a repeat (not enqueued)."""

    id: int
    duplicate: bool = False


class MessageStore(Protocol):
    """Persistent messages and deliveries of one cluster. Every method is one transaction."""

    async def publish(self, message: NewMessage, subscriptions: Sequence[str], key_window_us: int) -> Published:
        """Store ``message`` and a ready delivery of it for each of ``subscriptions``, committed before it returns.

        With a ``key`` already seen on the topic within ``key_window_us``: nothing is stored, ``duplicate`` is true
        and ``id`` is the first message's. With no subscriptions the message is not stored (``id`` 0)."""
        ...

    async def claim(
        self, subscription: str, limit: int, holder: str, lease_us: int, ordered: bool, delivery_limit: int
    ) -> list[Delivery]:
        """Claim up to ``limit`` deliveries due now, by priority (highest first) then publish order.

        Claiming counts an attempt. Expired messages are skipped (and dropped). A delivery whose lease ran out
        with ``delivery_limit`` attempts made is dead-lettered instead ("its holder stopped answering").
        ``ordered``: nothing is claimed while another holder's lease on this subscription runs, and the first
        delivery in order that is not due yet (a retry's backoff) holds back the ones behind it. Servers that
        claim at once never get the same delivery (PostgreSQL/MariaDB: row locks skipping locked rows;
        SQLite: its single writer)."""
        ...

    async def ack(self, subscription: str, ids: Sequence[int]) -> int:
        """Acknowledge (delete) these deliveries of ``subscription``; how many there were."""
        ...

    async def fail(self, subscription: str, delivery: int, error: str, retry_at_us: int | None) -> None:
        """An attempt failed: ready again at ``retry_at_us`` (lease dropped), or dead-lettered when ``None``."""
        ...

    async def release(self, subscription: str, ids: Sequence[int]) -> None:
        """Give claimed deliveries back at once, the attempt not counted (a server stopping)."""
        ...

    async def depths(self, subscriptions: Sequence[str] | None = None) -> dict[str, Depth]:
        """Each subscription's queue (``None``: every subscription with deliveries)."""
        ...

    async def peek(self, subscription: str, state: State, limit: int, after: int = 0) -> list[Delivery]:
        """Deliveries of ``subscription`` in ``state`` in order, without claiming them (those after the delivery
        ``after`` in that order: a page's last id gives the next page)."""
        ...

    async def purge(self, subscription: str, state: State | None) -> int:
        """Delete the subscription's deliveries in ``state`` (``None``: all); how many."""
        ...

    async def replay(self, subscription: str, ids: Sequence[int] | None) -> int:
        """Make dead deliveries (these, or all) ready again, attempts reset; how many."""
        ...

    async def sweep(self, now_us: int) -> int:
        """Drop expired deliveries, messages no delivery refers to, and idempotency keys past their window."""
        ...


__all__ = [
    "Delivery",
    "Depth",
    "Message",
    "MessageStore",
    "NewMessage",
    "Published",
    "State",
    "decode",
    "encode",
    "moment",
]
