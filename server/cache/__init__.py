"""Named caches: each server's in-memory store kept in step with the others' over the cluster bus, or one shared
copy in Redis. ``specs`` (``CacheSpec``); services use them as ``self.cache["default"]`` (``splice.server.core.cache``).
"""

from __future__ import annotations

from .specs import DEFAULT, CacheSpec

__all__ = ["DEFAULT", "CacheSpec"]
