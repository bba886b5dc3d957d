"""``self.out``: a service reaches outgoing connections by kind and name (``self.out.rest["billing"]``).

What a name gives depends on where it is used: inside ``async def handle`` the kind's asynchronous client
(``await self.out.rest["billing"].get("/x")``), inside ``def handle`` (a worker thread) its blocking twin
(``self.out.rest["billing"].get("/x")``), as ``invoke``/``ainvoke`` do. The connection a call took stays
open until the call ends, even when the connection is reconfigured meanwhile: a change applies to the
calls that start after it.

No I/O here: the connections themselves live in ``splice.server.connections``, which implements
``ConnectionSource``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from .errors import NotFound, SpliceError
from .naming import closest

KIND_NAMES = ("rest", "sql", "redis", "amqp")
"""The kinds a service finds as attributes of ``self.out``; more may be registered (``self.out["kind"]``)."""


class UnknownConnection(NotFound):
    """A service asked for a connection the cluster does not define (with the names it does)."""

    code = "unknown_connection"


class InvalidConnection(SpliceError):
    """A connection's definition is well-formed but cannot be used as it is (a rule across its fields)."""

    code = "invalid_connection"


class ConnectionSource(Protocol):
    """Where ``self.out`` takes its connections from (a server's ``connections.Connections``)."""

    def lease(self, kind: str, name: str, blocking: bool) -> tuple[Any, Callable[[], None]]:
        """The client for ``name`` of ``kind`` and what releases it when the call ends.

        Raises ``UnknownConnection`` (naming the known ones) if there is no such connection."""
        ...

    def names(self, kind: str) -> list[str]: ...


class NoConnections:
    """The source of a service run without a server (no connection is defined)."""

    def lease(self, kind: str, name: str, blocking: bool) -> tuple[Any, Callable[[], None]]:
        raise unknown(kind, name, {})

    def names(self, kind: str) -> list[str]:
        return []


def unknown(kind: str, name: str, known: dict[str, str]) -> UnknownConnection:
    """The error for ``self.out.<kind>[name]`` when ``known`` (name -> kind) has no such connection."""
    if name in known:
        return UnknownConnection(
            f"outgoing connection '{name}' is of kind {known[name]}, not {kind}: use self.out.{known[name]}['{name}']"
        )
    same = sorted(n for n, k in known.items() if k == kind)
    hint = closest(name, same)
    listed = ", ".join(same) if same else "none"
    suggestion = f"; did you mean '{hint}'?" if hint else ""
    return UnknownConnection(f"no {kind} connection named '{name}' (known {kind} connections: {listed}){suggestion}")


class KindView:
    """``self.out.rest``: the connections of one kind, by name."""

    __slots__ = ("_kind", "_out")

    def __init__(self, out: Out, kind: str) -> None:
        self._out = out
        self._kind = kind

    def __getitem__(self, name: str) -> Any:
        return self._out._lease(self._kind, name)

    def __contains__(self, name: object) -> bool:
        return name in self._out._source.names(self._kind)

    def names(self) -> list[str]:
        """The names of this kind's connections the cluster defines."""
        return self._out._source.names(self._kind)

    def __repr__(self) -> str:
        return f"<{self._kind} connections: {', '.join(self.names()) or 'none'}>"


class Out:
    """``self.out``: ``.rest``, ``.sql``, ``.redis``, ``.amqp`` (and ``self.out["kind"]`` for any other kind)."""

    __slots__ = ("_releases", "_source")

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source
        self._releases: list[Callable[[], None]] = []

    @property
    def rest(self) -> KindView:
        """REST (httpx): base URL, auth, timeouts, retries applied; ``.get("/path")`` etc."""
        return KindView(self, "rest")

    @property
    def sql(self) -> KindView:
        """SQL (SQLAlchemy): an ``Engine`` in ``def handle``, an ``AsyncEngine`` in ``async def handle``."""
        return KindView(self, "sql")

    @property
    def redis(self) -> KindView:
        """Redis (redis-py): ``redis.Redis`` in ``def handle``, ``redis.asyncio.Redis`` in ``async def handle``."""
        return KindView(self, "redis")

    @property
    def amqp(self) -> KindView:
        """AMQP (RabbitMQ): ``.publish(body, routing_key=...)`` returns once the broker confirmed it."""
        return KindView(self, "amqp")

    def __getitem__(self, kind: str) -> KindView:
        return KindView(self, kind)

    def _lease(self, kind: str, name: str) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            blocking = True
        else:
            blocking = False
        client, release = self._source.lease(kind, name, blocking)
        self._releases.append(release)
        return client

    def release(self) -> None:
        """The call ended: let go of every connection it took (a replaced one closes when its last call ends)."""
        releases, self._releases = self._releases, []
        for release in releases:
            release()


__all__ = [
    "KIND_NAMES",
    "ConnectionSource",
    "InvalidConnection",
    "KindView",
    "NoConnections",
    "Out",
    "UnknownConnection",
    "unknown",
]
