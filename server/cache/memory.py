"""One memory cache's store: a thread-safe LRU of encoded values with expiry, size limits and versions.

Entries are kept least recently used first (an ``OrderedDict`` under one lock: services call from worker threads
and the event loop alike). Past ``max_entries`` entries or ``max_bytes`` (each entry counted as its key, its
value and ``OVERHEAD``), the least recently used go. An entry past its expiry is never served; it is removed when
looked at, when it reaches the end of the LRU order, or by ``sweep``.

Each entry carries the version of the change that made it (``values.Version``), and a deletion leaves a
tombstone for ``TOMBSTONE_SECONDS``: a change that arrives from another server later than a newer one (the
set of a key that was deleted since) is ignored, so reordered events never bring back a deleted value. A
``clear`` or ``delete_prefix`` is remembered the same way.

Not cachetools: its caches take one limit (a size function or a count, not both), one ``ttl`` for all entries
(``TLRUCache`` aside), leave locking to the caller, and know nothing of versions or tombstones, which is most of
what this module does.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.cache import CacheError
from .values import ZERO, Version

OVERHEAD = 100
"""Bytes counted per entry besides its key and value (the dict slot, the entry object, the key's str header)."""
TOMBSTONE_SECONDS = 60.0
"""How long a deletion is remembered against late changes: far longer than an event is ever in flight."""

MAX_PREFIX_TOMBSTONES = 1000
"""Deletions by prefix remembered at most (each set of a key not seen before is checked against them all)."""


@dataclass(slots=True)
class Entry:
    data: bytes
    is_bytes: bool
    expires: float | None
    """``time.time()`` after which the entry is not served (``None``: never)."""
    version: Version
    size: int = 0


def entry_size(key: str, data: bytes) -> int:
    return len(key) + len(data) + OVERHEAD


class MemoryStore:
    """Keys to ``Entry``; every method is safe to call from any thread."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._deleted: OrderedDict[str, tuple[Version, float]] = OrderedDict()
        self._deleted_prefixes: list[tuple[str, Version, float]] = []
        self._floor: Version = ZERO
        """The version of the last ``clear``: anything older is gone."""

    # -- reading -----------------------------------------------------------------------------------

    def get(self, key: str, count: bool = True) -> Entry | None:
        """The live entry of ``key`` (now the most recently used), or ``None``; ``count`` it as a hit or miss."""
        with self._lock:
            entry = self._live(key, time.time())
            if entry is not None:
                self._entries.move_to_end(key)
            if count:
                if entry is None:
                    self.misses += 1
                else:
                    self.hits += 1
            return entry

    def _live(self, key: str, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires is not None and entry.expires <= now:
            self._drop(key)
            return None
        return entry

    def items(self, prefix: str = "") -> list[tuple[str, Entry]]:
        """Live entries whose key starts with ``prefix``, by key (the LRU order is left as it is)."""
        now = time.time()
        with self._lock:
            found = [
                (key, entry)
                for key, entry in self._entries.items()
                if key.startswith(prefix) and (entry.expires is None or entry.expires > now)
            ]
        return sorted(found, key=lambda item: item[0])

    def __len__(self) -> int:
        return len(self._entries)

    # -- changing ----------------------------------------------------------------------------------

    def put(self, key: str, entry: Entry) -> bool:
        """Store ``entry`` unless something newer holds the key (a later set, delete or clear); whether stored."""
        with self._lock:
            return self._put(key, entry)

    def _put(self, key: str, entry: Entry) -> bool:
        current = self._entries.get(key)
        if current is not None and current.version >= entry.version:
            return False
        if current is None and self._newer_deletion(key, entry.version):
            return False
        entry.size = entry_size(key, entry.data)
        if current is not None:
            self.bytes -= current.size
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.bytes += entry.size
        self._evict()
        return True

    def _newer_deletion(self, key: str, version: Version) -> bool:
        if version <= self._floor:
            return True
        deleted = self._deleted.get(key)
        if deleted is not None and deleted[0] >= version:
            return True
        return any(key.startswith(prefix) and seen >= version for prefix, seen, _ in self._deleted_prefixes)

    def add(self, key: str, entry: Entry) -> Entry | None:
        """Store ``entry`` only if ``key`` holds nothing live: ``None`` if stored, else the live entry."""
        with self._lock:
            current = self._live(key, time.time())
            if current is not None:
                self._entries.move_to_end(key)
                return current
            self._put(key, entry)
            return None

    def update(self, key: str, change: Callable[[Entry | None], Entry]) -> Entry:
        """Store what ``change`` makes of the live entry of ``key`` (or of ``None``), atomically; the new entry.
        ``change`` runs under the lock: it must be quick and must not call the store."""
        with self._lock:
            entry = change(self._live(key, time.time()))
            self._put(key, entry)
            return entry

    def remove(self, key: str, version: Version) -> bool:
        """Delete ``key`` as of ``version`` (an entry set later stays); whether a live entry was removed."""
        with self._lock:
            self._remember(self._deleted, key, version)
            current = self._entries.get(key)
            if current is None or current.version > version:
                return False
            live = current.expires is None or current.expires > time.time()
            self._drop(key)
            return live

    def remove_prefix(self, prefix: str, version: Version) -> int:
        """Delete every key starting with ``prefix`` as of ``version``; how many live entries went."""
        now = time.time()
        with self._lock:
            kept = [p for p in self._deleted_prefixes if p[2] > time.monotonic()][-MAX_PREFIX_TOMBSTONES + 1 :]
            self._deleted_prefixes = [*kept, (prefix, version, time.monotonic() + TOMBSTONE_SECONDS)]
            doomed = [k for k, e in self._entries.items() if k.startswith(prefix) and e.version <= version]
            return sum(self._drop_counting(key, now) for key in doomed)

    def clear(self, version: Version) -> int:
        """Delete everything as of ``version``; how many live entries went."""
        now = time.time()
        with self._lock:
            self._floor = max(self._floor, version)
            doomed = [k for k, e in self._entries.items() if e.version <= version]
            return sum(self._drop_counting(key, now) for key in doomed)

    def drop_all(self) -> int:
        """Forget every entry (this server may have missed changes); tombstones stay. How many went."""
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            self.bytes = 0
            return dropped

    def resize(self, max_entries: int, max_bytes: int) -> None:
        """New limits; entries beyond them go, least recently used first."""
        with self._lock:
            self.max_entries, self.max_bytes = max_entries, max_bytes
            self._evict()

    def sweep(self) -> int:
        """Remove expired entries and old tombstones; how many entries went."""
        now, monotonic = time.time(), time.monotonic()
        with self._lock:
            doomed = [k for k, e in self._entries.items() if e.expires is not None and e.expires <= now]
            for key in doomed:
                self._drop(key)
            while self._deleted and next(iter(self._deleted.values()))[1] <= monotonic:
                self._deleted.popitem(last=False)
            self._deleted_prefixes = [p for p in self._deleted_prefixes if p[2] > monotonic]
            return len(doomed)

    def stats(self) -> dict[str, Any]:
        return {
            "entries": len(self._entries),
            "bytes": self.bytes,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
        }

    # -- under the lock ----------------------------------------------------------------------------

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size

    def _drop_counting(self, key: str, now: float) -> int:
        entry = self._entries[key]
        self._drop(key)
        return int(entry.expires is None or entry.expires > now)

    def _evict(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self.bytes > self.max_bytes):
            _, entry = self._entries.popitem(last=False)
            self.bytes -= entry.size
            if entry.expires is None or entry.expires > time.time():
                self.evictions += 1

    def _remember(self, table: OrderedDict[str, tuple[Version, float]], key: str, version: Version) -> None:
        """A tombstone for ``key``, the newest kept; the oldest go past ``max_entries`` tombstones."""
        known = table.get(key)
        if known is not None and known[0] >= version:
            return
        table[key] = (version, time.monotonic() + TOMBSTONE_SECONDS)
        table.move_to_end(key)
        while len(table) > self.max_entries:
            table.popitem(last=False)


def int_value(cache: str, key: str, entry: Entry | None) -> int:
    """The integer an entry holds for ``incr`` (0 when there is none); ``CacheError`` if it holds another value."""
    if entry is None:
        return 0
    import json

    value = None if entry.is_bytes else json.loads(entry.data)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CacheError(f"cache '{cache}': '{key}' holds {type(value).__name__}, not an integer: it cannot be incr'd")
    return value


__all__ = ["OVERHEAD", "TOMBSTONE_SECONDS", "Entry", "MemoryStore", "entry_size", "int_value"]
