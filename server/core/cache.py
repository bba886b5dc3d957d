"""``self.cache``: named caches a service reads and writes, the same on every server of the cluster::

    class GetRate(Service):
        def handle(self) -> None:
            rates = self.cache["default"]
            rate = rates.get_or_set(f"rate:{self.request.input.currency}", fetch_rate, expiry=60)

        # async def handle: await self.cache["default"].aget(...), .aset(...), ...

Values are what JSON carries, or ``bytes``. A ``memory`` cache answers from this server's memory and tells the
others about every change over the cluster bus; a ``redis`` one reads and writes one shared copy. The caches sit
behind ``Caches`` (wired in at start up); the core knows only these protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .errors import NotFound, SpliceError

MISSING: Any = object()


class UnknownCache(NotFound):
    code = "cache_not_found"


class CacheError(SpliceError):
    """A value the cache cannot take (not JSON-able, over ``max_value``), or its Redis unreachable."""

    code = "cache_error"


class Cache(Protocol):
    """One named cache. Every plain method has an ``a``-prefixed async twin (``aget``, ``aset``...)."""

    name: str

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, expiry: float | None = None) -> None:
        """``expiry`` in seconds (``None``: the cache's default, else forever)."""
        ...

    def delete(self, key: str) -> bool: ...

    def exists(self, key: str) -> bool: ...

    def incr(self, key: str, by: int = 1) -> int:
        """Add ``by`` to an integer value (a missing key counts as 0); the new value."""
        ...

    def decr(self, key: str, by: int = 1) -> int: ...

    def get_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any:
        """The value of ``key``; when missing, ``value`` (or what calling it returns) is set and returned."""
        ...

    def keys(self, prefix: str = "") -> list[str]: ...

    def items(self, prefix: str = "") -> list[tuple[str, Any]]: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def clear(self) -> int: ...

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any, expiry: float | None = None) -> None: ...

    async def adelete(self, key: str) -> bool: ...

    async def aexists(self, key: str) -> bool: ...

    async def aincr(self, key: str, by: int = 1) -> int: ...

    async def adecr(self, key: str, by: int = 1) -> int: ...

    async def aget_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any: ...

    async def akeys(self, prefix: str = "") -> list[str]: ...

    async def aitems(self, prefix: str = "") -> list[tuple[str, Any]]: ...

    async def adelete_prefix(self, prefix: str) -> int: ...

    async def aclear(self) -> int: ...


class Caches(Protocol):
    """The caches of this server by name; an unknown name raises ``UnknownCache`` naming the known ones."""

    def __getitem__(self, name: str) -> Cache: ...

    def names(self) -> Iterable[str]: ...


class NoCaches:
    """Where a process without caches looks them up: a clear error."""

    def __getitem__(self, name: str) -> Cache:
        raise CacheError(f"self.cache[{name!r}] needs a running Splice server (or splice.testing)")

    def names(self) -> Iterable[str]:
        return ()


__all__ = ["MISSING", "Cache", "CacheError", "Caches", "NoCaches", "UnknownCache"]
