"""Non-persistent topics: messages kept in this server's memory and delivered from here to push subscriptions.

A topic with ``persistent = false`` never touches the ODB: a publish puts the message in a bounded in-memory
queue per matching push subscription *on the publishing server*, and that server's deliverers invoke the
services (``delivery.Deliverer``, the same logic as for stored messages: retries with backoff up to the delivery
limit, in order unless the subscription opts out). What that buys is speed; what it costs is durability:
messages still queued when the server stops are lost, and a dead-lettered one is only counted and logged (no
replay). Pull subscriptions get nothing from non-persistent topics (there is no queue to pull from on other
servers). Priorities are not honoured here (publish order only); idempotency keys are remembered by the
publishing server only.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.pubsub import PublishResult, PubSubError
from .delivery import now_us
from .specs import SubscriptionSpec, TopicSpec
from .store import Delivery, Message, NewMessage, decode

MAX_KEYS = 100_000
"""Idempotency keys a server remembers per non-persistent topic (the oldest are forgotten first)."""

_ids = itertools.count(1)


def next_id() -> int:
    """A number for an in-memory message or delivery, unique on this server (its id is ``m-<number>``)."""
    return next(_ids)


@dataclass
class _Entry:
    number: int
    """The message's number on this server (its id is ``m-<number>``)."""
    message: NewMessage
    attempts: int = 0
    next_us: int = 0
    lease_until_us: int = 0
    last_error: str | None = None


class MemoryQueue:
    """One push subscription's non-persistent messages on this server: a ``delivery.Source``."""

    kind = "memory"
    id_prefix = "m-"

    def __init__(self, spec: SubscriptionSpec) -> None:
        self.spec = spec
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        """By delivery id, in publish order."""
        self.dead = 0
        """Messages dropped after the delivery limit (counted only: in-memory dead letters are not kept)."""

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, number: int, message: NewMessage) -> None:
        self._entries[next_id()] = _Entry(number, message)

    def counts(self) -> tuple[int, int]:
        """(waiting, claimed now)."""
        now = now_us()
        claimed = sum(1 for e in self._entries.values() if e.lease_until_us > now)
        return len(self._entries) - claimed, claimed

    def clear(self) -> int:
        count = len(self._entries)
        self._entries.clear()
        return count

    async def claim(self, limit: int) -> list[Delivery]:
        now = now_us()
        lease = now + int(self.spec.lease * 1e6)
        found: list[Delivery] = []
        for delivery_id, entry in list(self._entries.items()):
            if len(found) >= limit:
                break
            expires = entry.message.expires_us
            if expires is not None and expires <= now:
                del self._entries[delivery_id]
                continue
            if entry.lease_until_us > now or entry.next_us > now:
                if self.spec.ordered:
                    break  # in order: a message under way or waiting for its retry holds back those behind it
                continue
            entry.attempts += 1
            entry.lease_until_us = lease
            found.append(self._delivery(delivery_id, entry))
        return found

    def _delivery(self, delivery_id: int, entry: _Entry) -> Delivery:
        """The entry as delivered: its payload decoded afresh each time (a subscriber changing its ``dict`` does
        not change what another receives)."""
        kept = entry.message
        message = Message(
            id=entry.number,
            topic=kept.topic,
            data=decode(kept.payload, kept.is_json),
            headers=kept.headers,
            priority=kept.priority,
            expires_us=kept.expires_us,
            publisher=kept.publisher,
            cid=kept.cid,
            key=kept.key,
            published_us=kept.published_us,
        )
        return Delivery(
            id=delivery_id,
            subscription=self.spec.name,
            message=message,
            attempt=entry.attempts,
            last_error=entry.last_error,
            lease_until_us=entry.lease_until_us,
        )

    async def ack(self, ids: Sequence[int]) -> int:
        return sum(self._entries.pop(delivery_id, None) is not None for delivery_id in ids)

    async def fail(self, delivery: Delivery, error: str, retry_at_us: int | None) -> None:
        entry = self._entries.get(delivery.id)
        if entry is None:
            return
        if retry_at_us is None:
            del self._entries[delivery.id]
            self.dead += 1
            return
        entry.next_us, entry.lease_until_us, entry.last_error = retry_at_us, 0, error

    async def release(self, ids: Sequence[int]) -> None:
        for delivery_id in ids:
            entry = self._entries.get(delivery_id)
            if entry is not None and entry.lease_until_us:
                entry.lease_until_us = 0
                entry.attempts -= 1

    def peek(self, limit: int) -> list[Delivery]:
        return [self._delivery(i, e) for i, e in itertools.islice(self._entries.items(), limit)]


class MemoryKeys:
    """Idempotency keys of non-persistent topics seen on this server within their topic's window."""

    def __init__(self, limit: int = MAX_KEYS) -> None:
        self.limit = limit
        self._seen: dict[str, OrderedDict[str, tuple[int, int]]] = {}
        """topic -> key -> (message number, when seen), oldest first."""

    def seen(self, topic: str, key: str, window_us: int, message: int) -> int | None:
        """The number of the message first published with ``key`` within the window, or ``None`` (then ``key`` is
        remembered for ``message``)."""
        now = now_us()
        keys = self._seen.setdefault(topic, OrderedDict())
        while keys and next(iter(keys.values()))[1] <= now - window_us:
            keys.popitem(last=False)  # past the window (oldest first)
        found = keys.get(key)
        if found is not None:
            return found[0]
        if len(keys) >= self.limit:
            keys.popitem(last=False)
        keys[key] = (message, now)
        return None


class MemoryTopics:
    """This server's in-memory queues of non-persistent messages, by push subscription, and the idempotency keys
    of non-persistent topics published here."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.queues: dict[str, MemoryQueue] = {}
        self.keys = MemoryKeys()

    def queue(self, spec: SubscriptionSpec) -> MemoryQueue:
        queue = self.queues.get(spec.name)
        if queue is None:
            queue = self.queues[spec.name] = MemoryQueue(spec)
        return queue

    def sync(self, subscriptions: Mapping[str, SubscriptionSpec]) -> None:
        """After a reload: a deleted (or no longer pushed) subscription's messages go with it; the others' queues
        follow their subscription's new spec."""
        for name in list(self.queues):
            spec = subscriptions.get(name)
            if spec is None or spec.service is None:
                del self.queues[name]
            else:
                self.queues[name].spec = spec

    def publish(self, topic: TopicSpec, message: NewMessage, pushed: Sequence[SubscriptionSpec]) -> PublishResult:
        """Queue ``message`` for each push subscription of ``pushed``, or for none: ``PubSubError`` when one of
        them holds ``max_depth`` messages; a duplicate (its key seen within the window) is not queued again."""
        queues = [self.queue(s) for s in pushed]
        for queue in queues:
            if len(queue) >= topic.max_depth:
                raise PubSubError(
                    f"subscription '{queue.spec.name}' of topic '{topic.name}' holds {len(queue)} messages in "
                    f"memory on server {self.server} (max_depth {topic.max_depth}): nothing was published"
                )
        number = next_id()
        if message.key is not None and queues:
            first = self.keys.seen(topic.name, message.key, int(topic.idempotency_window * 1e6), number)
            if first is not None:
                return PublishResult(f"m-{first}", topic.name, 0, duplicate=True, persistent=False)
        for queue in queues:
            queue.put(number, message)
        return PublishResult(f"m-{number}", topic.name, len(queues), persistent=False)


__all__ = ["MAX_KEYS", "MemoryKeys", "MemoryQueue", "MemoryTopics", "next_id"]
