"""Pub/sub messages and deliveries in the ODB: the broker's ``MessageStore``.

(Skeleton: the pub/sub store fills it in.)
"""

from __future__ import annotations

from collections.abc import Sequence

from ..pubsub.store import Delivery, Depth, NewMessage, Published, State
from .scope import ClusterScope


class OdbMessages(ClusterScope):
    """Messages and deliveries of one cluster (``splice.server.pubsub.store.MessageStore``)."""

    async def publish(self, message: NewMessage, subscriptions: Sequence[str], key_window_us: int) -> Published:
        raise NotImplementedError

    async def claim(
        self, subscription: str, limit: int, holder: str, lease_us: int, ordered: bool, delivery_limit: int
    ) -> list[Delivery]:
        raise NotImplementedError

    async def ack(self, subscription: str, ids: Sequence[int]) -> int:
        raise NotImplementedError

    async def fail(self, subscription: str, delivery: int, error: str, retry_at_us: int | None) -> None:
        raise NotImplementedError

    async def release(self, subscription: str, ids: Sequence[int]) -> None:
        raise NotImplementedError

    async def depths(self, subscriptions: Sequence[str] | None = None) -> dict[str, Depth]:
        raise NotImplementedError

    async def peek(self, subscription: str, state: State, limit: int, after: int = 0) -> list[Delivery]:
        raise NotImplementedError

    async def purge(self, subscription: str, state: State | None) -> int:
        raise NotImplementedError

    async def replay(self, subscription: str, ids: Sequence[int] | None) -> int:
        raise NotImplementedError

    async def sweep(self, now_us: int) -> int:
        raise NotImplementedError
