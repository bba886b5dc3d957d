"""The broker every server runs: publish, deliver to push subscriptions, pull, acknowledge. Active-active.

(Skeleton: the interface the edges code against; the pub/sub engine fills it in.)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..core.pubsub import PublishResult
from .specs import SubscriptionSpec, TopicPermission, TopicSpec
from .store import Delivery, MessageStore, State

if TYPE_CHECKING:
    from ..core.invoker import Invoker

logger = logging.getLogger(__name__)


class Definitions(Protocol):
    """The cluster's topics, subscriptions and permissions as this server holds them (``runtime.LiveConfig``)."""

    topics: dict[str, TopicSpec]
    subscriptions: dict[str, SubscriptionSpec]
    permissions: dict[str, TopicPermission]


class Events(Protocol):
    """The cluster bus's events (``cluster.member.ClusterMember``)."""

    def send_event(self, kind: str, data: dict[str, Any]) -> None: ...

    def on_event(self, kind: str, handler: Any) -> None: ...


class Broker:
    def __init__(
        self, definitions: Definitions, store: MessageStore, invoker: Invoker, server: str, events: Events
    ) -> None:
        self.definitions = definitions
        self.store = store
        self.invoker = invoker
        self.server = server
        self.events = events

    async def start(self) -> None:
        """Start delivering to push subscriptions (a ``runtime.Background`` part)."""

    async def stop(self) -> None:
        """Stop claiming; let deliveries under way finish, give claimed ones back."""

    async def reload(self) -> None:
        """After a change of topics or subscriptions (a ``LiveConfig`` listener)."""

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
        raise NotImplementedError

    def subscription(self, name: str) -> SubscriptionSpec:
        """The subscription ``name``; ``NotFound`` naming the known ones (and the closest) if there is none."""
        raise NotImplementedError

    async def pull(self, subscription: str, limit: int = 10, wait: float = 0.0, holder: str = "") -> list[Delivery]:
        """Claim up to ``limit`` messages of a pull subscription, waiting up to ``wait`` seconds for the first."""
        raise NotImplementedError

    async def ack(self, subscription: str, ids: Sequence[int]) -> int:
        raise NotImplementedError

    async def nack(self, subscription: str, ids: Sequence[int], error: str = "") -> int:
        """Give deliveries back as failed: retried after the subscription's backoff, dead past its limit."""
        raise NotImplementedError

    async def stats(self) -> dict[str, Any]:
        """Topics and subscriptions with their depths: ``{"topics": [...], "subscriptions": [...]}``."""
        raise NotImplementedError

    async def peek(self, subscription: str, state: State = "ready", limit: int = 20) -> list[Delivery]:
        raise NotImplementedError

    async def purge(self, subscription: str, state: State | None = None) -> int:
        raise NotImplementedError

    async def replay(self, subscription: str, ids: Sequence[int] | None = None) -> int:
        raise NotImplementedError


__all__ = ["Broker", "Definitions", "Events"]
