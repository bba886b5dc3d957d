"""Pub/sub for clients over WebSocket, at ``/splice/pubsub/ws``: messages of pull subscriptions pushed as they come.

The handshake carries the credentials of one of the cluster's security definitions, as a REST call does (an API
key may also come as ``?api_key=``, for browsers, which cannot set headers on a WebSocket); refused, it answers
401 (or closes with 4401 before accepting, on a server without the ASGI ``websocket.http.response`` extension).
Then every frame is a JSON object with an ``op``; each may carry a ``ref`` of the client's choosing, which the
answer to it repeats:

- ``{"op": "subscribe", "subscription": "x", "max_in_flight": 10}`` -> ``{"op": "subscribed", ...}``; then
  ``{"op": "message", "subscription": "x", "delivery": 7, "attempt": 1, "message": {...}}`` for each message,
  at most ``max_in_flight`` of them unacknowledged at a time. An ordered subscription (the default) gives out
  nothing while any of its messages is out: its messages come in batches of up to ``max_in_flight``, the next
  once every one of the batch is acknowledged (or nacked).
- ``{"op": "ack", "ids": [7, ...]}`` (delivery ids) -> nothing, or ``{"op": "acked", ...}`` when it has a ``ref``;
  ``{"op": "nack", "ids": [...], "error": "..."}`` gives them back to be retried after the subscription's backoff.
- ``{"op": "unsubscribe", "subscription": "x"}`` -> ``{"op": "unsubscribed", ...}``: its unacknowledged
  messages go back to the queue at once (their attempt not counted), as they do when the socket closes.
- ``{"op": "publish", "topic": "t", "data": ..., "key": ..., "headers": {...}, "priority": 0, "expiry": 60}``
  (``"encoding": "base64"`` to publish the bytes ``data`` encodes) -> ``{"op": "published", ...}``.
- anything refused -> ``{"op": "error", "ref": ..., "error": {"code", "message"}}``; the socket stays open.

Permissions are those of REST (``http.pubsub``): publish needs the definition's publish permission for the topic,
subscribe its subscribe permission for the subscription's topic (and, for a subscription made over REST, to be
its owner). A frame over ``max_message`` bytes (1 MiB) closes the socket with 1009; the server stopping, with 1001.
Each subscription's messages are claimed for the subscription's ``lease``: one not acknowledged within it is
delivered again (to this socket or another reader).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Message, Receive, Scope, Send

from ..core.context import current_cid, new_cid
from ..core.errors import BadRequest, Conflict, Forbidden, NotFound, SpliceError
from ..core.websockets import NotConnected
from ..pubsub.broker import MAX_PULL
from ..pubsub.store import Delivery
from .pubsub import MAX_HEADERS, MAX_IDS, Access
from .websocket import QUERY_KEY, Connection, _deny, _remote, _size

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
PATH = "/splice/pubsub/ws"
MAX_MESSAGE = 1024 * 1024
"""The largest frame a client may send (bytes)."""
MAX_IN_FLIGHT = MAX_PULL
PULL_WAIT = 20.0
"""How long one pull of a subscription's pump waits for a message before it asks again."""
RETRY = 1.0
"""Seconds a pump waits after the broker failed before it pulls again."""


class PubSubSocketApp:
    """The ASGI app of ``/splice/pubsub/ws``."""

    def __init__(self, runtime: Runtime, access: Access | None = None, max_message: int = MAX_MESSAGE) -> None:
        self.runtime = runtime
        self.access = access or Access(runtime)
        self.max_message = max_message
        self.sessions: set[Session] = set()
        runtime.live.listeners.append(self.reconcile)

    async def reconcile(self) -> None:
        """After a change of configuration: end the subscriptions a socket may no longer read (or that are gone)."""
        await asyncio.gather(*(session.recheck() for session in list(self.sessions)), return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        if scope["path"] != PATH:
            return await _deny(scope, send, 404, "not_found", f"no WebSocket endpoint at {scope['path']}", 4404)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"))) if scope["query_string"] else {}
        key = query.get(QUERY_KEY)
        if key:  # every API-key header a definition reads, unless the client sent it
            headers = {**{h: key for h in self.access.key_headers()}, **headers}
        security = self.access.identify(headers)
        if security is None:
            message, extra = self.access.unauthorized()
            return await _deny(scope, send, 401, "unauthorized", message, 4401, extra)
        await send({"type": "websocket.accept"})
        connection = Connection(send, "pubsub", _remote(scope, headers))
        session = Session(self, connection, security)
        logger.debug("pub/sub WebSocket %s opened by %s from %s", connection.id, security, connection.remote)
        watch = asyncio.create_task(self._close_at_shutdown(connection))
        self.sessions.add(session)
        try:
            await session.serve(receive)
        finally:
            self.sessions.discard(session)
            watch.cancel()
            connection.closed = True
            await session.close()
            logger.debug("pub/sub WebSocket %s closed", connection.id)

    async def _close_at_shutdown(self, connection: Connection) -> None:
        await self.runtime.shutdown.wait()
        await connection.aclose(1001, "the server is shutting down")


@dataclass(eq=False)
class _Subscribed:
    """One subscription a socket reads: its pump and the deliveries sent and not acknowledged yet."""

    name: str
    max_in_flight: int
    ordered: bool
    unacked: dict[int, Delivery] = field(default_factory=dict)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the pump may claim more: fewer than ``max_in_flight`` unacknowledged, or, for an ordered
    subscription (which gives out nothing while any of its messages is out), none."""
    pump: asyncio.Task[None] | None = None

    def free(self) -> int:
        """How many more messages may go out now."""
        if self.ordered and self.unacked:
            return 0
        return self.max_in_flight - len(self.unacked)

    def settled(self) -> None:
        if self.free() > 0:
            self.room.set()
        else:
            self.room.clear()


class Session:
    """One socket's subscriptions and requests."""

    def __init__(self, app: PubSubSocketApp, connection: Connection, security: str) -> None:
        self.runtime = app.runtime
        self.access = app.access
        self.max_message = app.max_message
        self.connection = connection
        self.security = security
        self.holder = f"ws:{connection.id}"
        self.subscribed: dict[str, _Subscribed] = {}

    async def serve(self, receive: Receive) -> None:
        while not self.connection.closed:
            message: Message = await receive()
            if message["type"] != "websocket.receive" or self.connection.closed:
                return
            text: str | None = message.get("text")
            data: bytes | None = message.get("bytes")
            size = len(data) if data is not None else _size(text or "", self.max_message)
            if size > self.max_message:
                return await self.connection.aclose(1009, f"a message may have at most {self.max_message} bytes")
            token = current_cid.set(new_cid())
            try:
                await self._frame(text if text is not None else data or b"")
            finally:
                current_cid.reset(token)

    async def _frame(self, raw: str | bytes) -> None:
        ref: Any = None
        try:
            try:
                request = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise BadRequest(f"the message is not valid JSON: {exc}") from None
            if not isinstance(request, dict):
                raise BadRequest('a message must be a JSON object with an "op"')
            ref = request.get("ref")
            answer = await self._op(request)
        except SpliceError as exc:
            answer = {"op": "error", "error": exc.as_dict(), "cid": current_cid.get()}
        if answer is not None:
            if ref is not None:
                answer["ref"] = ref
            await self._send(answer)

    async def _op(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request.get("op")
        if op == "subscribe":
            return await self.subscribe(request)
        if op == "unsubscribe":
            return await self.unsubscribe(request)
        if op in ("ack", "nack"):
            answer = await self.settle(request, op)
            return answer if "ref" in request else None
        if op == "publish":
            return await self.publish(request)
        raise BadRequest(f"op: must be one of subscribe, unsubscribe, ack, nack, publish; got {op!r}")

    async def subscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        _fields(request, "subscription", "max_in_flight")
        name = _text(request, "subscription")
        limit = request.get("max_in_flight", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_IN_FLIGHT:
            raise BadRequest(f"max_in_flight: must be a whole number from 1 to {MAX_IN_FLIGHT}, got {limit!r}")
        spec = self.access.subscription_to_read(self.security, name)
        if name in self.subscribed:
            raise BadRequest(f"subscription '{name}' is already subscribed on this connection")
        subscribed = _Subscribed(name, limit, spec.ordered)
        subscribed.room.set()
        self.subscribed[name] = subscribed
        subscribed.pump = asyncio.create_task(self._pump(subscribed))
        return {"op": "subscribed", "subscription": name, "topic": spec.topic, "max_in_flight": limit}

    async def unsubscribe(self, request: dict[str, Any]) -> dict[str, Any]:
        _fields(request, "subscription")
        name = _text(request, "subscription")
        subscribed = self.subscribed.pop(name, None)
        if subscribed is None:
            listed = ", ".join(sorted(self.subscribed)) or "none"
            raise NotFound(f"subscription '{name}' is not subscribed on this connection (subscribed: {listed})")
        released = await self._stop(subscribed)
        return {"op": "unsubscribed", "subscription": name, "released": released}

    async def settle(self, request: dict[str, Any], op: str) -> dict[str, Any]:
        """Ack or nack deliveries sent on this connection, each with its subscription."""
        _fields(request, "ids", *(("error",) if op == "nack" else ()))
        ids = request.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise BadRequest('ids: must be a list of delivery ids (the "delivery" of each message)')
        if len(ids) > MAX_IDS:
            raise BadRequest(f"ids: at most {MAX_IDS} at once, got {len(ids)}")
        error = request.get("error", "")
        if not isinstance(error, str) or len(error) > 2000:
            raise BadRequest("error: must be a text of at most 2000 characters")
        groups: dict[str, list[int]] = {}
        unknown = []
        for delivery in ids:
            owner = next((s for s in self.subscribed.values() if delivery in s.unacked), None)
            if owner is None:
                unknown.append(delivery)
            else:
                groups.setdefault(owner.name, []).append(delivery)
        if unknown:
            raise NotFound(
                f"deliveries {', '.join(map(str, unknown))} are not waiting for an acknowledgement on this "
                "connection (nothing was acknowledged)"
            )
        count = 0
        for name, chosen in groups.items():
            subscribed = self.subscribed[name]
            if op == "ack":
                count += await self.runtime.broker.ack(name, chosen)
            else:
                count += await self.runtime.broker.nack(name, chosen, error or "nacked by the WebSocket client")
            for delivery in chosen:
                subscribed.unacked.pop(delivery, None)
            subscribed.settled()
        return {"op": f"{op}ed", "ids": ids, "count": count}

    async def publish(self, request: dict[str, Any]) -> dict[str, Any]:
        _fields(request, "topic", "data", "encoding", "key", "headers", "priority", "expiry")
        topic = self.access.topic_to_publish(self.security, _text(request, "topic"))
        data = request.get("data")
        encoding = request.get("encoding", "json")
        if encoding == "base64":
            if not isinstance(data, str):
                raise BadRequest('data: with "encoding": "base64", must be the bytes in base64')
            try:
                data = base64.b64decode(data, validate=True)
            except binascii.Error:
                raise BadRequest("data: not valid base64") from None
        elif encoding != "json":
            raise BadRequest(f'encoding: must be "json" (the default) or "base64", got {encoding!r}')
        result = await self.runtime.broker.publish(
            topic.name, data, **_publish_options(request), publisher=f"ws:{self.security}", cid=current_cid.get()
        )
        return {"op": "published", **result.as_json()}

    async def _pump(self, subscribed: _Subscribed) -> None:
        """Claim the subscription's messages and send them, keeping at most ``max_in_flight`` unacknowledged."""
        while not self.connection.closed:
            await subscribed.room.wait()
            try:
                spec = self.access.subscription_to_read(self.security, subscribed.name)  # still there, allowed
                subscribed.ordered = spec.ordered
                free = subscribed.free()
                if free <= 0:
                    subscribed.settled()
                    continue
                deliveries = await self.runtime.broker.pull(subscribed.name, free, PULL_WAIT, holder=self.holder)
            except (NotFound, Forbidden, Conflict) as exc:  # gone, or no longer allowed: the client is told
                return await self._end(subscribed, exc)
            except Exception:
                logger.exception("pulling subscription %s for WebSocket %s failed", subscribed.name, self.holder)
                await asyncio.sleep(RETRY)
                continue
            for delivery in deliveries:
                subscribed.unacked[delivery.id] = delivery
            subscribed.settled()
            for delivery in deliveries:
                await self._send({"op": "message", **delivery.as_json()})

    async def recheck(self) -> None:
        for subscribed in list(self.subscribed.values()):
            try:
                self.access.subscription_to_read(self.security, subscribed.name)
            except (NotFound, Forbidden, Conflict) as exc:
                if subscribed.pump is not None and subscribed.pump is not asyncio.current_task():
                    subscribed.pump.cancel()
                    await asyncio.gather(subscribed.pump, return_exceptions=True)
                await self._end(subscribed, exc)

    async def _end(self, subscribed: _Subscribed, exc: SpliceError) -> None:
        """A subscription ends without the client asking: what it held goes back, the client is told why."""
        if self.subscribed.get(subscribed.name) is not subscribed:
            return  # ended already
        del self.subscribed[subscribed.name]
        held = list(subscribed.unacked)
        subscribed.unacked.clear()
        await self._release(subscribed.name, held)
        await self._send({"op": "error", "subscription": subscribed.name, "error": exc.as_dict(), "cid": new_cid()})

    async def _send(self, answer: dict[str, Any]) -> None:
        with contextlib.suppress(NotConnected):
            await self.connection.asend(answer)

    async def _stop(self, subscribed: _Subscribed) -> int:
        """Stop a subscription's pump and give back what it holds; how many deliveries went back."""
        if subscribed.pump is not None:
            subscribed.pump.cancel()
            await asyncio.gather(subscribed.pump, return_exceptions=True)
        held = list(subscribed.unacked)
        subscribed.unacked.clear()
        await self._release(subscribed.name, held)
        return len(held)

    async def _release(self, subscription: str, ids: list[int]) -> None:
        """Give deliveries back at once, their attempt not counted: a socket closing says nothing of a message."""
        if not ids:
            return
        try:
            await self.runtime.broker.release(subscription, ids)
        except NotFound:  # the subscription is gone, and its deliveries with it
            pass
        except Exception:  # they come back anyway when their lease runs out
            logger.exception("giving back %d deliveries of %s from %s failed", len(ids), subscription, self.holder)

    async def close(self) -> None:
        subscribed, self.subscribed = list(self.subscribed.values()), {}
        await asyncio.gather(*(self._stop(s) for s in subscribed), return_exceptions=True)


def _fields(request: dict[str, Any], *allowed: str) -> None:
    unknown = [k for k in request if k not in ("op", "ref", *allowed)]
    if unknown:
        listed = ", ".join(("op", "ref", *allowed))
        raise BadRequest(f"{', '.join(unknown)}: unknown field of {request['op']!r} (fields: {listed})")


def _text(request: dict[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{name}: must be a name (text), got {value!r}")
    return value


def _publish_options(request: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    key = request.get("key")
    if key is not None:
        if not isinstance(key, str) or not 1 <= len(key) <= 200:
            raise BadRequest("key: must be a text of 1 to 200 characters")
        options["key"] = key
    headers = request.get("headers")
    if headers is not None:
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise BadRequest("headers: must be an object of texts")
        if len(headers) > MAX_HEADERS:
            raise BadRequest(f"headers: at most {MAX_HEADERS}")
        options["headers"] = headers
    priority = request.get("priority")
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool) or not -(2**31) <= priority < 2**31:
            raise BadRequest("priority: must be a 32-bit integer (higher is delivered first)")
        options["priority"] = priority
    expiry = request.get("expiry")
    if expiry is not None:
        if not isinstance(expiry, int | float) or isinstance(expiry, bool) or not 0 < expiry <= 365 * 86400:
            raise BadRequest("expiry: must be more than 0 and at most 31536000 seconds (a year)")
        options["expiry"] = float(expiry)
    return options
