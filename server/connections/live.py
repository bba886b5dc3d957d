"""The outgoing connections one server holds, as the ODB defines them; reconfigured at run time.

``reload`` gets the stored rows after every configuration change (the cluster membership calls it, as for
channels). A connection whose definition did not change is kept with its pools; a changed one is opened
anew and the old one retired: calls that already took it finish on it, and it closes when the last of them
ends. A connection that cannot be opened (a secret this server cannot decrypt, a kind it does not know)
stays listed and answers each use with what is wrong.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.outgoing import unknown
from . import kinds as _kinds  # noqa: F401  (registers the kinds)
from .registry import KINDS, Connection
from .secrets import ClusterKey

logger = logging.getLogger(__name__)


class ConnectionUnusable(Exception):
    """A defined connection this server could not open; the message says why."""


@dataclass
class _Entry:
    name: str
    kind: str
    fingerprint: str
    connection: Connection | None
    problem: str | None = None
    users: int = 0
    retired: bool = False
    closing: bool = field(default=False)


class Connections:
    """``self.out``'s source on a server: connections by name, leased per call."""

    def __init__(self, server: str, key: Callable[[], ClusterKey]) -> None:
        self.server = server
        self._key = key
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def key(self) -> ClusterKey:
        """The cluster key (``SecretsError`` if it cannot be read): what encrypts a secret before it is stored."""
        return self._key()

    async def reload(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Make this server's connections what ``rows`` (``OdbOutgoing.list_outgoing_stored()``) define."""
        self._loop = asyncio.get_running_loop()
        wanted = {row["name"]: row for row in rows}
        with self._lock:
            current = dict(self._entries)
        fresh: dict[str, _Entry] = {}
        for name, row in wanted.items():
            fingerprint = _fingerprint(row)
            old = current.get(name)
            fresh[name] = old if old is not None and old.fingerprint == fingerprint else self._open(row, fingerprint)
        with self._lock:
            self._entries = fresh
            doomed = [e for name, e in current.items() if fresh.get(name) is not e]
            for entry in doomed:
                entry.retired = True
        for entry in doomed:
            logger.info("outgoing connection %s (%s) replaced or removed", entry.name, entry.kind)
            self._close_if_idle(entry)

    def _open(self, row: Mapping[str, Any], fingerprint: str) -> _Entry:
        name, kind = row["name"], row["kind"]
        try:
            known = KINDS.get(kind)
            if known is None:
                raise ConnectionUnusable(f"this server knows no connection kind {kind!r} (it knows {sorted(KINDS)})")
            spec = known.spec.model_validate(row["config"], strict=False)
            secrets: dict[str, str] = {}
            if row.get("secrets"):
                secrets = self._key().decrypt(row["secrets"], row.get("key_id"), f"outgoing connection '{name}'")
            connection = known.open(spec, secrets, self.server)
        except Exception as exc:
            logger.error("outgoing connection %s (%s) cannot be used on this server: %s", name, kind, exc)
            return _Entry(name, kind, fingerprint, None, f"outgoing connection '{name}' cannot be used: {exc}")
        return _Entry(name, kind, fingerprint, connection)

    def lease(self, kind: str, name: str, blocking: bool) -> tuple[Any, Callable[[], None]]:
        entry, connection = self._take(kind, name)
        try:
            client = connection.client(blocking)
        except BaseException:
            self._release(entry)
            raise
        return client, lambda: self._release(entry)

    def hold(self, kind: str, name: str) -> tuple[Connection, Callable[[], None]]:
        """The connection object ``name`` itself and its release: it stays open, even once replaced or removed,
        until released. For channels that consume through a connection (AMQP) for as long as they run; compare
        objects with ``is`` to see that a definition changed. Raises as ``lease`` does."""
        entry, connection = self._take(kind, name)
        return connection, lambda: self._release(entry)

    def _take(self, kind: str, name: str) -> tuple[_Entry, Connection]:
        with self._lock:
            entry = self._entries.get(name)
            if entry is None or entry.kind != kind:
                raise unknown(kind, name, {e.name: e.kind for e in self._entries.values()})
            if entry.connection is None:
                raise ConnectionUnusable(entry.problem)
            entry.users += 1
            return entry, entry.connection

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
        if entry.retired:
            loop = self._loop
            if loop is None:
                return
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                self._close_if_idle(entry)
            else:
                loop.call_soon_threadsafe(self._close_if_idle, entry)

    def _close_if_idle(self, entry: _Entry) -> None:
        with self._lock:
            if entry.users > 0 or entry.closing or entry.connection is None:
                return
            entry.closing = True
        task = asyncio.get_running_loop().create_task(self._aclose(entry))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _aclose(entry: _Entry) -> None:
        assert entry.connection is not None
        try:
            await entry.connection.aclose()
        except Exception:
            logger.exception("closing outgoing connection %s failed", entry.name)

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(e.name for e in self._entries.values() if e.kind == kind)

    def kinds(self) -> dict[str, str]:
        """Every connection's name and kind."""
        with self._lock:
            return {e.name: e.kind for e in self._entries.values()}

    async def ping(self, name: str) -> dict[str, Any]:
        """Reach ``name``'s remote system from this server: ``{"server", "ok", "ms", "detail" | "error"}``."""
        with self._lock:
            entry = self._entries.get(name)
        answer: dict[str, Any] = {"server": self.server}
        if entry is None:
            return {**answer, "ok": False, "ms": 0.0, "error": f"this server has no outgoing connection '{name}'"}
        if entry.connection is None:
            return {**answer, "ok": False, "ms": 0.0, "error": entry.problem}
        started = time.perf_counter()
        try:
            detail = await entry.connection.ping()
        except Exception as exc:
            ms = round((time.perf_counter() - started) * 1000, 1)
            return {**answer, "ok": False, "ms": ms, "error": f"{type(exc).__name__}: {exc}"}
        return {**answer, "ok": True, "ms": round((time.perf_counter() - started) * 1000, 1), "detail": detail}

    async def close(self) -> None:
        """At shutdown: close every connection (calls have ended by now)."""
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for entry in entries:
            if entry.connection is not None and not entry.closing:
                entry.closing = True
                await self._aclose(entry)
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=5)


def _fingerprint(row: Mapping[str, Any]) -> str:
    return json.dumps([row["kind"], row["config"], row.get("secrets")], sort_keys=True, default=str)


__all__ = ["ConnectionUnusable", "Connections"]
