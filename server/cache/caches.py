"""This server's caches by name (``self.cache``), made from the cluster's definitions.

The caches are those the ODB defines (``LiveConfig.caches``) plus ``default``, which every cluster has (with the
``CacheSpec`` defaults unless it is declared with others). After a change of definitions (``reload``) a new
cache is made, a removed one goes with its entries, and one whose limits changed keeps the entries that fit.

``memory`` caches send every change to the other servers as a ``cache`` event and apply theirs; when this server
may have missed events (``on_missed_events``: a gap in a sender's numbers, Redis reconnecting, a server killed)
every memory cache drops its entries, so that nothing changed elsewhere meanwhile is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from ..core.cache import Cache, UnknownCache
from ..core.naming import unknown_name
from ..core.outgoing import ConnectionSource, NoConnections
from .local import MemoryCache
from .redis import RedisCache
from .specs import DEFAULT, CacheSpec
from .values import Clock

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0
"""How often expired entries nobody reads are removed from memory caches."""
AnyCache = MemoryCache | RedisCache


class Definitions(Protocol):
    """The cluster's caches as this server holds them (``runtime.LiveConfig``)."""

    caches: dict[str, CacheSpec]


class Events(Protocol):
    """The cluster bus's events (``cluster.member.ClusterMember``)."""

    def send_event(self, kind: str, data: dict[str, Any]) -> None: ...

    def on_event(self, kind: str, handler: Callable[[Any, str], Awaitable[None]]) -> None: ...

    def on_missed_events(self, handler: Callable[[], Awaitable[None]]) -> None: ...


def wanted(declared: Mapping[str, CacheSpec]) -> dict[str, CacheSpec]:
    """The caches a cluster has: ``default`` and those declared (a declared ``default`` replaces the built-in)."""
    return {DEFAULT: CacheSpec(name=DEFAULT), **declared}


class ServerCaches:
    """``splice.server.core.cache.Caches`` of one server. ``events`` ``None``: caches of this process only
    (``splice.testing``)."""

    def __init__(
        self,
        definitions: Definitions,
        events: Events | None,
        connections: ConnectionSource | None,
        server: str,
    ) -> None:
        self.definitions = definitions
        self.events = events
        self.connections: ConnectionSource = connections if connections is not None else NoConnections()
        self.server = server
        self.clock = Clock(server)
        self._caches: dict[str, AnyCache] = {}
        self._sweeping: asyncio.Task[None] | None = None
        self.rebuild()
        if events is not None:
            events.on_event("cache", self._on_event)
            events.on_missed_events(self._on_missed)

    def __getitem__(self, name: str) -> Cache:
        cache = self._caches.get(name)
        if cache is None:
            raise _unknown(name, list(self._caches))
        return cache

    def get(self, name: str) -> AnyCache:
        """The cache ``name`` as it is (``UnknownCache`` naming the known ones)."""
        cache = self._caches.get(name)
        if cache is None:
            raise _unknown(name, list(self._caches))
        return cache

    def names(self) -> Iterable[str]:
        return sorted(self._caches)

    def _emit(self, data: dict[str, Any]) -> None:
        if self.events is not None:
            self.events.send_event("cache", data)

    def _make(self, spec: CacheSpec) -> AnyCache:
        if spec.backend == "redis":
            return RedisCache(spec, self.connections)
        return MemoryCache(spec, self.clock, self._emit)

    def rebuild(self) -> None:
        """Make the caches what the definitions say now (``reload`` without waiting)."""
        fresh: dict[str, AnyCache] = {}
        for name, spec in wanted(self.definitions.caches).items():
            current = self._caches.get(name)
            if current is not None and current.spec == spec:
                fresh[name] = current
            elif isinstance(current, MemoryCache) and spec.backend == "memory":
                current.reconfigure(spec)
                fresh[name] = current
            else:
                fresh[name] = self._make(spec)
                if current is not None:
                    logger.info("cache %s is now %s (its entries here are gone)", name, spec.backend)
        self._caches = fresh  # one assignment: a lookup from another thread sees the old caches or the new

    async def reload(self) -> None:
        """After a change of cache definitions (a ``LiveConfig`` listener)."""
        self.rebuild()

    async def start(self) -> None:
        """Remove expired entries now and then (a ``runtime.Background`` part)."""
        self._sweeping = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeping

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            for cache in list(self._caches.values()):
                if isinstance(cache, MemoryCache):
                    cache.store.sweep()

    async def _on_event(self, data: Any, origin: str) -> None:
        cache = self._caches.get(str(data.get("cache"))) if isinstance(data, dict) else None
        if not isinstance(cache, MemoryCache):
            return  # a cache this server does not have (yet): nothing here to keep in step
        try:
            cache.apply(data)
        except (KeyError, ValueError, TypeError) as exc:
            logger.warning("a cache event from %s that is not one (%s): %.200r", origin, exc, data)

    async def _on_missed(self) -> None:
        for cache in list(self._caches.values()):
            if isinstance(cache, MemoryCache):
                dropped = cache.store.drop_all()
                if dropped:
                    logger.info("cache %s: dropped %s entries that may be stale", cache.name, dropped)

    async def stats(self, name: str) -> dict[str, Any]:
        """This server's figures of cache ``name``: entries, bytes, hits, misses, evictions."""
        cache = self.get(name)
        if isinstance(cache, MemoryCache):
            return cache.stats()
        return await cache.stats()


def _unknown(name: str, known: list[str]) -> UnknownCache:
    return UnknownCache(unknown_name("cache", name, known))


__all__ = ["SWEEP_SECONDS", "AnyCache", "Definitions", "Events", "ServerCaches", "wanted"]
