"""Named caches: each server's in-memory store kept in step with the others' over the cluster bus, or one shared
copy in Redis. ``specs`` (``CacheSpec``), ``caches`` (``ServerCaches``: a server's caches by name), ``local`` (a
memory cache), ``memory`` (its LRU store), ``redis`` (a Redis-backed cache), ``values`` (encoding, versions).
Services use them as ``self.cache["default"]`` (``splice.server.core.cache``).
"""

from __future__ import annotations

from .caches import ServerCaches
from .local import MemoryCache
from .memory import MemoryStore
from .redis import RedisCache
from .specs import DEFAULT, CacheSpec

__all__ = ["DEFAULT", "CacheSpec", "MemoryCache", "MemoryStore", "RedisCache", "ServerCaches"]
