"""This server's caches by name (``self.cache``), made from the cluster's definitions.

(Skeleton: the cache work fills it in.)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..core.cache import Cache, CacheError
from .specs import CacheSpec

if TYPE_CHECKING:
    from ..connections import Connections


class Definitions(Protocol):
    """The cluster's caches as this server holds them (``runtime.LiveConfig``)."""

    caches: dict[str, CacheSpec]


class Events(Protocol):
    """The cluster bus's events (``cluster.member.ClusterMember``)."""

    def send_event(self, kind: str, data: dict[str, Any]) -> None: ...

    def on_event(self, kind: str, handler: Any) -> None: ...

    def on_missed_events(self, handler: Any) -> None: ...


class ServerCaches:
    """``splice.server.core.cache.Caches`` of one server."""

    def __init__(self, definitions: Definitions, events: Events, connections: Connections, server: str) -> None:
        self.definitions = definitions
        self.events = events
        self.connections = connections
        self.server = server

    def __getitem__(self, name: str) -> Cache:
        raise CacheError("caches are not built yet")

    def names(self) -> Iterable[str]:
        return ()

    async def start(self) -> None:
        """Listen to the other servers' changes (a ``runtime.Background`` part)."""

    async def stop(self) -> None:
        """Stop listening."""

    async def reload(self) -> None:
        """After a change of cache definitions (a ``LiveConfig`` listener)."""


__all__ = ["ServerCaches"]
