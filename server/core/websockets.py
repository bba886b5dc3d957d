"""``self.websocket`` and ``self.websockets``: a service reaches the WebSocket clients connected to this server.

A call that came over a WebSocket channel has ``self.websocket``: the connection it came through (``.id``,
``.channel``, ``.send(data)`` in ``def handle``, ``await .asend(data)`` in ``async def handle``, ``.close()``).
Every call has ``self.websockets``, this server's hub: ``.connected(channel=None)`` lists the open connections,
``.send(id, data)`` / ``await .asend(id, data)`` pushes to one, ``.broadcast(channel, data)`` /
``await .abroadcast(channel, data)`` to every connection of a channel.

The hub is per server: a client is connected to one server of the cluster, and only that server's hub knows it.
A service that must reach a client wherever it is connected keeps the connection's id together with the
server's name (``self.server``) and calls a service on that server, or has every server broadcast.

What is sent: ``bytes`` go as one binary message, anything else as one JSON text message.

No I/O here: the HTTP edge (``splice.server.http.websocket``) implements ``Socket`` and adds and removes the
connections; this module only keeps them by id.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Protocol

from .errors import NotFound


class NotConnected(NotFound):
    """No open WebSocket connection has this id on this server (closed, or connected to another server)."""

    code = "websocket_not_connected"


class Socket(Protocol):
    """One open WebSocket connection, as the HTTP edge holds it."""

    id: str
    channel: str
    since: float
    """When the handshake was accepted (seconds since the epoch)."""
    remote: str
    """The client's address (as the load balancer forwarded it, when there is one)."""

    async def asend(self, data: Any) -> None:
        """Send ``data``; raises ``NotConnected`` once the connection is closed or closing."""
        ...

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close now (a message being handled gets no answer)."""
        ...

    def close_after(self, code: int = 1000, reason: str = "") -> None:
        """Close once the message being handled is answered (thread-safe: it only takes note)."""
        ...


def _blocking(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    asynchronous = what.replace(".", ".a", 1)
    raise RuntimeError(f"self.{what} blocks: inside 'async def handle' use 'await self.{asynchronous}'")


class WebSocket:
    """``self.websocket``: the connection the current call came through (``None`` for any other call)."""

    __slots__ = ("_socket",)

    def __init__(self, socket: Socket) -> None:
        self._socket = socket

    @property
    def id(self) -> str:
        """This connection's id on this server: what ``self.websockets.send(id, data)`` takes."""
        return self._socket.id

    @property
    def channel(self) -> str:
        return self._socket.channel

    def send(self, data: Any) -> None:
        """Send ``data`` to this client now, before the call's own answer. For ``def handle``."""
        _blocking("websocket.send(...)")
        import anyio.from_thread

        anyio.from_thread.run(self._socket.asend, data)

    async def asend(self, data: Any) -> None:
        """Send ``data`` to this client now, before the call's own answer. For ``async def handle``."""
        await self._socket.asend(data)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection once this call's answer (if any) is sent; works in both kinds of ``handle``."""
        self._socket.close_after(code, reason)

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} on channel {self.channel}>"


class Hub:
    """This server's open WebSocket connections, by id: ``self.websockets`` of every service."""

    def __init__(self) -> None:
        self._sockets: dict[str, Socket] = {}

    def add(self, socket: Socket) -> None:
        self._sockets[socket.id] = socket

    def remove(self, socket: Socket) -> None:
        if self._sockets.get(socket.id) is socket:
            del self._sockets[socket.id]

    def sockets(self, channel: str | None = None) -> list[Socket]:
        """The open connections (of ``channel`` only, when given)."""
        return [s for s in list(self._sockets.values()) if channel is None or s.channel == channel]

    def connected(self, channel: str | None = None) -> list[dict[str, Any]]:
        """``{"id", "channel", "since" (ISO-8601, UTC), "remote"}`` of each open connection (of ``channel``)."""
        return [
            {
                "id": s.id,
                "channel": s.channel,
                "since": datetime.datetime.fromtimestamp(s.since, datetime.UTC).isoformat(),
                "remote": s.remote,
            }
            for s in self.sockets(channel)
        ]

    def _get(self, id: str) -> Socket:
        socket = self._sockets.get(id)
        if socket is None:
            raise NotConnected(
                f"no WebSocket connection '{id}' is open on this server (closed, or connected to another server)"
            )
        return socket

    def send(self, id: str, data: Any) -> None:
        """Send ``data`` to connection ``id``; raises ``NotConnected``. For ``def handle``."""
        _blocking("websockets.send(...)")
        import anyio.from_thread

        anyio.from_thread.run(self.asend, id, data)

    async def asend(self, id: str, data: Any) -> None:
        """Send ``data`` to connection ``id``; raises ``NotConnected``. For ``async def handle``."""
        await self._get(id).asend(data)

    def broadcast(self, channel: str, data: Any) -> int:
        """Send ``data`` to every connection of ``channel``; returns how many got it. For ``def handle``."""
        _blocking("websockets.broadcast(...)")
        import anyio.from_thread

        return anyio.from_thread.run(self.abroadcast, channel, data)

    async def abroadcast(self, channel: str, data: Any) -> int:
        """Send ``data`` to every connection of ``channel`` at once; returns how many got it (a connection that
        closed meanwhile is left out). For ``async def handle``."""
        sockets = self.sockets(channel)
        results = await asyncio.gather(*(s.asend(data) for s in sockets), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, NotConnected | OSError):
                raise result
        return sum(1 for result in results if result is None)

    async def close_all(self, code: int, reason: str, channel: str | None = None) -> None:
        """Close every connection (of ``channel``), as at shutdown."""
        await asyncio.gather(*(s.aclose(code, reason) for s in self.sockets(channel)), return_exceptions=True)


__all__ = ["Hub", "NotConnected", "Socket", "WebSocket"]
