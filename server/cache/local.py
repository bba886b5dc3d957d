"""A ``memory`` cache: this server's copy, kept in step with the other servers' over cluster events.

Every change (set, delete, incr, delete by prefix, clear) is made here first, then sent to the other servers as a
``cache`` event carrying the new value and its version; each applies it unless it holds something newer
(``memory.MemoryStore``). Reads never leave the server. A server that may have missed events drops everything
(``ServerCaches``), so it can answer "not there" where another server has a value, but never gives back a value
that was changed or deleted elsewhere, past the few milliseconds an event takes.

``incr`` is atomic on one server; two servers adding to one key at the same moment both send their result and
the later one wins (a count shared by the cluster belongs in a ``redis`` cache). The methods are quick and never
block on the network, so both ``def handle`` (in a worker thread) and ``async def handle`` may use either
form; the ``a``-prefixed twins are there so that code reads the same for every backend.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from ..core.cache import MISSING
from .memory import Entry, MemoryStore, int_value
from .specs import CacheSpec
from .values import Clock, Version, check_key, decode, encode, expires_at, from_wire, to_wire

Emit = Callable[[dict[str, Any]], None]
"""Sends a ``cache`` event to the other servers (``ClusterMember.send_event``); any thread."""


class MemoryCache:
    """``splice.server.core.cache.Cache`` over this server's memory."""

    def __init__(self, spec: CacheSpec, clock: Clock, emit: Emit) -> None:
        self.name = spec.name
        self.spec = spec
        self.clock = clock
        self._emit = emit
        self.store = MemoryStore(spec.max_entries, spec.max_bytes)

    def reconfigure(self, spec: CacheSpec) -> None:
        """New limits (the entries that fit them stay)."""
        self.spec = spec
        self.store.resize(spec.max_entries, spec.max_bytes)

    @property
    def _max_value(self) -> int:
        return min(self.spec.max_value, self.spec.max_bytes)

    def _entry(self, key: str, value: Any, expiry: float | None) -> Entry:
        data, is_bytes = encode(self.name, check_key(self.name, key), value, self._max_value)
        return Entry(data, is_bytes, expires_at(expiry, self.spec.expiry), self.clock.next())

    def _sent(self, key: str, entry: Entry) -> None:
        self._emit(
            {
                "cache": self.name,
                "op": "set",
                "key": key,
                "value": to_wire(entry.data, entry.is_bytes),
                "bytes": entry.is_bytes,
                "expires": entry.expires,
                "version": list(entry.version),
            }
        )

    def _removal(self, op: str, version: Version, **what: str) -> None:
        self._emit({"cache": self.name, "op": op, "version": list(version), **what})

    # -- Cache -------------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        entry = self.store.get(key)
        return default if entry is None else decode(entry.data, entry.is_bytes)

    def set(self, key: str, value: Any, expiry: float | None = None) -> None:
        entry = self._entry(key, value, expiry)
        self.store.put(key, entry)
        self._sent(key, entry)

    def delete(self, key: str) -> bool:
        """Whether this server held ``key``; the others delete it either way (they may hold it when this one
        does not: evicted here, or set a moment ago)."""
        version = self.clock.next()
        existed = self.store.remove(check_key(self.name, key), version)
        self._removal("delete", version, key=key)
        return existed

    def exists(self, key: str) -> bool:
        return self.store.get(key, count=False) is not None

    def incr(self, key: str, by: int = 1) -> int:
        check_key(self.name, key)
        if not isinstance(by, int) or isinstance(by, bool):
            raise TypeError(f"incr/decr take an integer, not {by!r}")
        default_expiry = self.spec.expiry

        def add(entry: Entry | None) -> Entry:
            value = int_value(self.name, key, entry) + by
            expires = entry.expires if entry is not None else expires_at(None, default_expiry)
            return Entry(str(value).encode(), False, expires, self.clock.next())  # under the store's lock

        entry = self.store.update(key, add)
        self._sent(key, entry)
        return int(entry.data)

    def decr(self, key: str, by: int = 1) -> int:
        return self.incr(key, -by)

    def get_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any:
        found = self.get(key, MISSING)
        if found is not MISSING:
            return found
        made = value() if callable(value) else value
        return self._add(key, made, expiry)

    def _add(self, key: str, value: Any, expiry: float | None) -> Any:
        entry = self._entry(key, value, expiry)
        current = self.store.add(key, entry)
        if current is not None:  # set by another call meanwhile: that one stands
            return decode(current.data, current.is_bytes)
        self._sent(key, entry)
        return value

    def keys(self, prefix: str = "") -> list[str]:
        return [key for key, _ in self.store.items(prefix)]

    def items(self, prefix: str = "") -> list[tuple[str, Any]]:
        return [(key, decode(entry.data, entry.is_bytes)) for key, entry in self.store.items(prefix)]

    def delete_prefix(self, prefix: str) -> int:
        version = self.clock.next()
        gone = self.store.remove_prefix(prefix, version)
        self._removal("delete_prefix", version, prefix=prefix)
        return gone

    def clear(self) -> int:
        version = self.clock.next()
        gone = self.store.clear(version)
        self._removal("clear", version)
        return gone

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.get(key, default)

    async def aset(self, key: str, value: Any, expiry: float | None = None) -> None:
        self.set(key, value, expiry)

    async def adelete(self, key: str) -> bool:
        return self.delete(key)

    async def aexists(self, key: str) -> bool:
        return self.exists(key)

    async def aincr(self, key: str, by: int = 1) -> int:
        return self.incr(key, by)

    async def adecr(self, key: str, by: int = 1) -> int:
        return self.decr(key, by)

    async def aget_or_set(self, key: str, value: Any | Callable[[], Any], expiry: float | None = None) -> Any:
        """As ``get_or_set``; ``value`` may also be an async function."""
        found = self.get(key, MISSING)
        if found is not MISSING:
            return found
        made = value() if callable(value) else value
        if inspect.isawaitable(made):
            made = await made
        return self._add(key, made, expiry)

    async def akeys(self, prefix: str = "") -> list[str]:
        return self.keys(prefix)

    async def aitems(self, prefix: str = "") -> list[tuple[str, Any]]:
        return self.items(prefix)

    async def adelete_prefix(self, prefix: str) -> int:
        return self.delete_prefix(prefix)

    async def aclear(self) -> int:
        return self.clear()

    # -- from the other servers --------------------------------------------------------------------

    def apply(self, event: dict[str, Any]) -> None:
        """A change another server made (a ``cache`` event's data); ``KeyError``/``ValueError`` if malformed."""
        stamp, server = event["version"]
        version: Version = (int(stamp), str(server))
        self.clock.seen(version)
        op = event["op"]
        if op == "set":
            expires = event.get("expires")
            if expires is not None and expires <= time.time():
                return
            data = from_wire(event["value"], bool(event.get("bytes")))
            self.store.put(event["key"], Entry(data, bool(event.get("bytes")), expires, version))
        elif op == "delete":
            self.store.remove(event["key"], version)
        elif op == "delete_prefix":
            self.store.remove_prefix(event["prefix"], version)
        elif op == "clear":
            self.store.clear(version)
        else:
            raise ValueError(f"unknown cache operation {op!r}")

    def stats(self) -> dict[str, Any]:
        return self.store.stats()

    def __repr__(self) -> str:
        return f"<MemoryCache {self.name!r}: {len(self.store)} entries>"


__all__ = ["Emit", "MemoryCache"]
