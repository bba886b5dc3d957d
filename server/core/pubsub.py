"""``self.publish``: a running service publishes to a topic; a push subscription's service receives messages.

    class PlaceOrder(Service):
        def handle(self) -> None:
            order = place(self.request.input)
            self.publish("orders.created", order, key=f"order-{order['id']}")

    class Ship(Service):                       # [[subscriptions]] name="shipping" topic="orders.*" service="ship"
        name = "ship"

        async def handle(self) -> None:
            order = self.request.payload       # the message's data
            message = self.request.pubsub      # id, topic, subscription, headers, attempt, published_at...

``publish`` is for ``def handle`` (it waits for the ODB from the worker thread); inside ``async def handle`` use
``await self.apublish(...)``. Either returns once a persistent message is committed for every subscription its
topic has. The broker sits behind ``Publisher`` (wired in at start up); the core knows only this protocol of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import Forbidden, NotFound, SpliceError


@dataclass(frozen=True)
class PublishResult:
    """What a publish did: the message's id, how many subscriptions it was enqueued for, and whether its
    idempotency key had been seen within the topic's window (then nothing was enqueued again)."""

    id: int | str
    topic: str
    subscriptions: int
    duplicate: bool = False
    persistent: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "subscriptions": self.subscriptions,
            "duplicate": self.duplicate,
            "persistent": self.persistent,
        }


@dataclass(frozen=True)
class PubSubMessage:
    """``self.request.pubsub``: the message a push subscription delivers (``self.request.payload`` is its data)."""

    id: int | str
    topic: str
    subscription: str
    delivery: int
    """The delivery's id (what an acknowledgement names)."""
    attempt: int
    """1 the first time; a redelivery after a failure or a crash says how many attempts came before."""
    headers: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    publisher: str = ""
    cid: str = ""
    key: str | None = None
    published_at: str | None = None
    expires_at: str | None = None


class UnknownTopic(NotFound):
    """A publish to a topic the cluster does not have; says which it has and the closest name."""

    code = "topic_not_found"


class PublishRefused(Forbidden):
    """The caller may not publish to, or subscribe to, this topic (its topic permissions say what it may)."""


class PubSubError(SpliceError):
    """A publish the broker cannot take (a topic full to its ``max_depth``, no broker on this process)."""

    code = "pubsub_unavailable"


class Publisher(Protocol):
    async def publish(
        self,
        topic: str,
        data: Any,
        *,
        headers: Mapping[str, str] | None = None,
        priority: int = 0,
        expiry: float | None = None,
        key: str | None = None,
        publisher: str = "",
        cid: str = "",
    ) -> PublishResult:
        """Publish ``data`` (JSON-able, or ``bytes``) to ``topic``; ``expiry`` in seconds; ``key`` idempotency.

        Raises ``UnknownTopic``, ``TooLarge`` (over the topic's ``max_payload``), ``PubSubError``."""
        ...


class NoPublisher:
    """Where a process without a broker publishes (``splice.testing`` without a stub): a clear error."""

    async def publish(self, topic: str, data: Any, **options: Any) -> PublishResult:
        raise PubSubError(
            f"self.publish({topic!r}) needs a running Splice server; under splice.testing, stub the call instead"
        )


__all__ = [
    "NoPublisher",
    "PubSubError",
    "PubSubMessage",
    "PublishRefused",
    "PublishResult",
    "Publisher",
    "UnknownTopic",
]
