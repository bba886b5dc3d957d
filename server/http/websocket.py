"""WebSocket channels: each message a client sends invokes the channel's service; services push through the hub.

The handshake is checked against the channel's security definition as a REST request is. Browsers cannot
set headers on a WebSocket, so an API-key definition also takes the key as the query parameter ``?api_key=``
(the key is then part of the URL, which proxies may log: send the header where the client can). A refused
handshake answers HTTP 401 (404 when no channel has the path) with the JSON error body REST answers, or, on
a server without the ASGI ``websocket.http.response`` extension, is closed before it is accepted with 4401
(4404). No service is invoked for it.

After the handshake:

- a text message is JSON: it invokes the service with the parsed value as payload; a binary message invokes
  it with the bytes. Each message is a call of its own (a fresh cid) with ``self.websocket`` set.
- the service's response payload, unless ``None``, goes back as one message: ``bytes`` binary, anything else
  JSON text (``core/jsonvalues.py``). An error (the service raised, invalid input, a message that is not JSON, a
  payload JSON cannot carry: ``bad_response``) answers
  ``{"error": {"code", "message", ...}, "cid": ...}`` and the connection stays open.
- the messages of one connection are handled one at a time, in the order they came (a client that wants calls
  to overlap opens more connections); different connections run concurrently.
- a message larger than the channel's ``max_message`` closes with 1009 (Hypercorn's own limit, the largest any
  channel may allow, stops a larger one before it is buffered); ``idle_timeout`` seconds without a message
  from the client close with 1000; when the server stops every connection closes with 1001, and so do a
  channel's connections when the channel is removed.
- pings: none unless a channel sets ``ping_interval``; then Hypercorn pings every connection at one interval
  fixed when the server starts: the smallest ``ping_interval`` of the server's WebSocket channels then. Off by
  default because Hypercorn (0.18) keeps a closed socket's connection task until its next ping is due: a
  server stopping within that interval of a socket closing waits out its whole grace period (5 s) and logs
  the cancelled tasks. ``idle_timeout`` closes sockets whose client went away without a word.

Connections are per server (``self.websockets``, ``splice.server.core.websockets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope, Send

from ..core.context import current_cid, new_cid
from ..core.errors import BadRequest, SpliceError
from ..core.jsonvalues import Unencodable
from ..core.service import Request
from ..core.websockets import NotConnected, WebSocket
from ._paths import PathTable, authorized, challenge, header_of
from .responses import CID_HEADER, BadResponse, dumps, error_body

if TYPE_CHECKING:
    from ..channels.specs import WebSocketChannel
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
"""Seconds between the pings Hypercorn sends when no WebSocket channel asks for less."""
QUERY_KEY = "api_key"
"""The query parameter that may carry an API key at the handshake."""


def ping_interval(channels: Iterable[Any]) -> float | None:
    """The one ping interval of a server (Hypercorn's ``websocket_ping_interval``) that starts with ``channels``:
    the smallest a channel asks for, ``None`` (no pings) when none does."""
    asked = [value for spec in channels if (value := getattr(spec, "ping_interval", None)) is not None]
    return min(asked, default=None)


def _frame(data: Any) -> Message:
    if isinstance(data, bytes | bytearray | memoryview):
        return {"type": "websocket.send", "bytes": bytes(data)}
    return {"type": "websocket.send", "text": dumps(data).decode()}


class Connection:
    """One accepted WebSocket connection (``core.websockets.Socket``): sends are serialised by a lock."""

    def __init__(self, send: Send, channel: str, remote: str) -> None:
        self.id = os.urandom(12).hex()  # services address connections by id: unguessable, unlike a cid
        self.channel = channel
        self.since = time.time()
        self.remote = remote
        self.closed = False
        self.closing: tuple[int, str] | None = None
        self._send = send
        self._lock = asyncio.Lock()

    async def asend(self, data: Any) -> None:
        """Send ``data`` (``bytes`` as a binary frame, else JSON text; ``Unencodable`` if JSON cannot carry it)."""
        await self.send_frame(_frame(data))

    async def send_frame(self, message: Message) -> None:
        async with self._lock:
            if self.closed:
                raise NotConnected(f"WebSocket connection '{self.id}' is closed")
            await self._send(message)

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        async with self._lock:
            if self.closed:
                return
            self.closed = True
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    def close_after(self, code: int = 1000, reason: str = "") -> None:
        self.closing = (code, reason)


@dataclass(frozen=True)
class _Handshake:
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]


class WebSocketApp:
    """The ASGI app for ``websocket`` scopes outside ``/splice/``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.table: PathTable[WebSocketChannel] = PathTable(runtime.live, "websocket")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        path: str = scope["path"]
        found = None if path.startswith("/splice/") else self.table.match(path)
        if found is None:
            return await _deny(scope, send, 404, "not_found", f"no WebSocket channel at {path}", 4404)
        spec, params = found
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
        checked = headers
        key_header = header_of(self.runtime, spec.security)
        if key_header is not None and QUERY_KEY in query:
            key = query.pop(QUERY_KEY)
            checked = headers if key_header in headers else {**headers, key_header: key}
        if not authorized(self.runtime, spec.security, checked):
            message = f"channel '{spec.name}' needs valid credentials"
            extra = challenge(self.runtime, spec.security)
            return await _deny(scope, send, 401, "unauthorized", message, 4401, extra)
        await send({"type": "websocket.accept"})
        connection = Connection(send, spec.name, _remote(scope, headers))
        hub = self.runtime.invoker.websockets
        hub.add(connection)
        logger.debug("WebSocket %s opened on channel %s from %s", connection.id, spec.name, connection.remote)
        try:
            await self._serve(connection, receive, _Handshake(path, params, query, headers))
        finally:
            hub.remove(connection)
            connection.closed = True
            logger.debug("WebSocket %s closed", connection.id)

    async def _serve(self, connection: Connection, receive: Receive, handshake: _Handshake) -> None:
        while not connection.closed:
            spec = self.table.named(connection.channel)
            if spec is None:
                return await connection.aclose(1001, "the channel was removed")
            try:
                async with asyncio.timeout(spec.idle_timeout):
                    message = await receive()
            except TimeoutError:
                return await connection.aclose(1000, f"idle for {spec.idle_timeout:g} s")
            if message["type"] != "websocket.receive" or connection.closed:
                return
            await self._message(connection, spec, message, handshake)
            if connection.closing is not None:
                await connection.aclose(*connection.closing)

    async def _message(
        self, connection: Connection, spec: WebSocketChannel, message: Message, handshake: _Handshake
    ) -> None:
        text: str | None = message.get("text")
        data: bytes | None = message.get("bytes")
        size = len(data) if data is not None else _size(text or "", spec.max_message)
        if size > spec.max_message:
            return await connection.aclose(1009, f"a message may have at most {spec.max_message} bytes")
        cid = new_cid()
        token = current_cid.set(cid)
        reply: Any
        try:
            request = Request(
                data if text is None else _parse(text),
                path=handshake.path,
                path_params=handshake.params,
                query=handshake.query,
                headers=handshake.headers,
                channel=spec.name,
                websocket=WebSocket(connection),
            )
            response = await self.runtime.invoker.call(spec.service, request=request, cid=cid)
            reply = response.payload
        except SpliceError as exc:
            reply = {"error": exc.as_dict(), "cid": cid}
        finally:
            current_cid.reset(token)
        if reply is not None:
            try:
                frame = _frame(reply)
            except Unencodable as exc:
                bad = BadResponse(f"service '{spec.service}' answered {exc}")
                logger.error("%s", bad)
                frame = _frame({"error": bad.as_dict(), "cid": cid})
            with contextlib.suppress(NotConnected):
                await connection.send_frame(frame)


class WebSocketPart:
    """Closes this server's WebSockets: all of them (1001) when it stops, a channel's when the channel goes.

    A ``runtime.background`` part: closing at the shutdown event, not at ``stop()``, lets Hypercorn's graceful
    shutdown end with the connections instead of waiting for them.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._task: asyncio.Task[None] | None = None
        runtime.live.listeners.append(self.reconcile)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._close_at_shutdown())

    async def _close_at_shutdown(self) -> None:
        await self.runtime.shutdown.wait()
        await self.runtime.invoker.websockets.close_all(1001, "the server is shutting down")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.runtime.invoker.websockets.close_all(1001, "the server is shutting down")

    async def reconcile(self) -> None:
        names = {spec.name for spec in self.runtime.live.of("websocket")}
        gone = [s for s in self.runtime.invoker.websockets.sockets() if s.channel not in names]
        await asyncio.gather(*(s.aclose(1001, "the channel was removed") for s in gone), return_exceptions=True)


def _size(text: str, limit: int) -> int:
    """The UTF-8 size of ``text``, encoding it only when its length alone does not settle the limit."""
    return len(text) if len(text) > limit or len(text) * 4 <= limit else len(text.encode())


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the message is not valid JSON: {exc}") from None


def _remote(scope: Scope, headers: dict[str, str]) -> str:
    forwarded = headers.get("x-forwarded-for", "").split(",")[0].strip()
    if forwarded:
        return forwarded
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else ""


async def _deny(
    scope: Scope,
    send: Callable[[Message], Awaitable[None]],
    status: int,
    code: str,
    message: str,
    close_code: int,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Refuse the handshake: an HTTP answer where the server can send one, else a close before accepting."""
    cid = new_cid()
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        reason = message.encode()[:120].decode(errors="ignore")  # a close reason holds at most 123 bytes
        return await send({"type": "websocket.close", "code": close_code, "reason": reason})
    body = error_body(status, code, message, cid)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(CID_HEADER.encode(), cid.encode()), *(extra or [])]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
