"""The cluster bus: how a server tells the others "deployment N is in the ODB" and hears back.

Two adapters with one shape. ``HttpBus`` calls each live peer's ``POST /splice/admin/cluster/sync``
(one host, no Redis) and the answer is the peer's acknowledgement. ``RedisBus`` publishes a notice on
one pub/sub channel and collects the peers' acknowledgements from it (required across hosts); when
Redis is down it falls back to HTTP, and when it comes back the server catches up from the ODB. The bus
is only a doorbell: the ODB holds the deployments, and every server also checks it periodically.

Both also carry cluster events (``send_event``: a cache's set, pub/sub's doorbell), fire and forget, in the order
they were sent per sender and receiver: ``RedisBus`` publishes them on the same channel (one publish reaches every
server); ``HttpBus`` posts them to each live peer's ``POST /splice/admin/cluster/events``, one request at a time
per peer, the events sent meanwhile going together in the next. A send that fails is not retried: the receiver
finds out (``events.EventTracker``) and drops what it kept from events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx


logger = logging.getLogger(__name__)

Ack = dict[str, Any]
OnNotice = Callable[[int, str, "dict[str, Any] | None"], Awaitable[Ack]]
"""Called with (sequence, origin server, the change if the notice carried it) on a peer; returns its
acknowledgement."""
OnEvents = Callable[[list[dict[str, Any]]], Awaitable[object]]
"""Called with events another server sent, in its order."""

EVENT_TIMEOUT = 1.0
"""Seconds one post of events to a peer may take; then it counts as lost (the peer finds out: events.PATIENCE)."""
MAX_QUEUED = 100_000
"""Events waiting for one peer, at most; beyond, those waiting are dropped (the peer finds out from the numbers)."""
MAX_BATCH = 4 * 1024 * 1024
"""Bytes of events sent in one request or one Redis message (more wait for the next; one larger event goes alone)."""


class Bus(Protocol):
    @property
    def connected(self) -> bool:
        """Whether notices can go out on this bus now (HTTP: always)."""

    @property
    def events_lost(self) -> int:
        """Events this server sent that did not reach a peer (as far as it can tell)."""

    async def start(
        self, on_notice: OnNotice, on_reconnect: Callable[[], Awaitable[object]], on_events: OnEvents
    ) -> None: ...

    async def notify(
        self, sequence: int, peers: Sequence[dict[str, Any]], timeout: float, change: dict[str, Any] | None = None
    ) -> dict[str, Ack]:
        """Tell ``peers`` about ``sequence`` (with ``change``, the deployment itself, where the bus carries it); their
        acknowledgements by server name (missing ones: timed out)."""

    def send_event(self, event: bytes, peers: Sequence[dict[str, Any]]) -> None:
        """Send one event (its JSON) to every other server without waiting; on the event loop."""

    async def flush(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until the events sent so far have left."""

    async def settle(self, timeout: float) -> None:
        """Wait (up to ``timeout``) until the events sent so far have reached the other servers (or failed to)."""

    async def close(self) -> None: ...


def take_batch(queue: deque[bytes]) -> list[bytes]:
    """The events at the head of ``queue`` that go together (up to ``MAX_BATCH`` bytes, at least one)."""
    batch = [queue.popleft()]
    size = len(batch[0])
    while queue and size + len(queue[0]) <= MAX_BATCH:
        size += len(queue[0])
        batch.append(queue.popleft())
    return batch


def events_body(batch: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(batch) + b"]}"


class _Lane:
    """The events waiting for one peer, and the task posting them (at most one request at a time)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: deque[bytes] = deque()
        self.task: asyncio.Task[None] | None = None
        self.failing = False


def _is_http_error(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.HTTPError)


def seal(token: str, sequence: int, origin: str, change: dict[str, Any]) -> str:
    """The MAC (HMAC-SHA256 keyed by the cluster's internal token) of a notice's change: Redis carries only doorbells
    otherwise, so whoever can publish on it must not be able to hand the servers code; a change without the right
    MAC is ignored (the peer reads the ODB)."""
    body = json.dumps([sequence, origin, change], sort_keys=True, separators=(",", ":"))
    return hmac.new(token.encode(), b"splice notice change v1\0" + body.encode(), hashlib.sha256).hexdigest()


def timed_out(name: str, timeout: float) -> Ack:
    return {"server": name, "status": "timed_out", "error": f"no answer within {timeout:g} s"}


class HttpBus:
    connected = True

    def __init__(self, me: str, token: str) -> None:
        self.me = me
        self.token = token
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http: httpx.AsyncClient | None = None
        self._lanes: dict[str, _Lane] = {}
        self._stopping = False
        self.events_lost = 0
        """Events a post to a peer failed to deliver (each peer counted apart)."""

    def _client(self) -> httpx.AsyncClient:
        # httpx is imported on first use (or by warm()), not at start: it is ~0.1 s of a server's start-up.
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(headers=self._headers, timeout=None)
        return self._http

    @staticmethod
    async def warm() -> None:
        """Import httpx in a worker thread once the server answers, so the first deploy does not pay for it."""
        import importlib

        await asyncio.sleep(0.5)  # after the server answers its first ping
        await asyncio.to_thread(importlib.import_module, "httpx")

    async def start(
        self, on_notice: OnNotice, on_reconnect: Callable[[], Awaitable[object]], on_events: OnEvents
    ) -> None:
        """Nothing to listen to: notices and events arrive as calls of the admin API."""

    def send_event(self, event: bytes, peers: Sequence[dict[str, Any]]) -> None:
        if len(self._lanes) > len(peers):
            self._drop_lanes({peer["name"] for peer in peers})
        for peer in peers:
            lane = self._lanes.get(peer["name"])
            if lane is None or lane.url != peer["url"]:
                lane = self._lanes[peer["name"]] = _Lane(peer["url"])
            if len(lane.queue) >= MAX_QUEUED:  # a peer that takes nothing (paused): it will see the gap
                self.events_lost += len(lane.queue)
                lane.queue.clear()
            lane.queue.append(event)
            if lane.task is None:
                lane.task = asyncio.create_task(self._post_events(peer["name"], lane))

    def _drop_lanes(self, live: set[str]) -> None:
        """Forget what waits for servers no longer seen alive (a server that comes back starts empty)."""
        for name in [name for name in self._lanes if name not in live]:
            lane = self._lanes.pop(name)
            self.events_lost += len(lane.queue)
            lane.queue.clear()

    async def _post_events(self, name: str, lane: _Lane) -> None:
        try:
            while lane.queue:
                batch = take_batch(lane.queue)
                problem = await self._post_batch(lane.url, batch)
                if problem is None:
                    if lane.failing:
                        logger.info("cluster events reach %s again", name)
                    lane.failing = False
                    continue
                self.events_lost += len(batch)
                if not lane.failing:  # at a stop, peers that stopped first cannot take the goodbye: no news
                    level = logging.INFO if self._stopping else logging.WARNING
                    logger.log(level, "cluster events to %s lost (%s); it will drop what it kept", name, problem)
                lane.failing = True
        finally:
            lane.task = None

    async def _post_batch(self, url: str, batch: list[bytes]) -> str | None:
        """Post events to one peer; what went wrong, or ``None``."""
        try:
            answer = await asyncio.wait_for(
                self._client().post(
                    f"{url}/splice/admin/cluster/events",
                    content=events_body(batch),
                    headers={"Content-Type": "application/json"},
                ),
                EVENT_TIMEOUT,
            )
        except TimeoutError:
            return f"no answer within {EVENT_TIMEOUT:g} s"
        except Exception as exc:  # httpx.HTTPError, imported lazily
            if not _is_http_error(exc):
                raise
            return f"{type(exc).__name__}: {exc}"
        return None if answer.status_code == 200 else f"HTTP {answer.status_code}: {answer.text[:200]}"

    async def flush(self, timeout: float) -> None:
        self._stopping = True  # only a stopping server flushes
        await self.settle(timeout)

    async def settle(self, timeout: float) -> None:
        # A lane's task ends once its queue is empty and its last post answered (the peer applied the events).
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def _one(self, sequence: int, peer: dict[str, Any], timeout: float, change: dict[str, Any] | None) -> Ack:
        started = time.perf_counter()
        url, body = f"{peer['url']}/splice/admin/cluster/sync", {"sequence": sequence, "origin": self.me}
        try:
            async with asyncio.timeout(timeout):
                answer = await self._client().post(url, json={**body, "change": change} if change else body)
                if change and answer.status_code in (413, 422):  # too large for it, or a peer that takes no change yet
                    answer = await self._client().post(url, json=body)
        except TimeoutError:
            return timed_out(peer["name"], timeout)
        except Exception as exc:  # httpx.HTTPError, imported lazily
            if not _is_http_error(exc):
                raise
            return {"server": peer["name"], "status": "unreachable", "error": f"{type(exc).__name__}: {exc}"}
        if answer.status_code != 200:
            return {
                "server": peer["name"],
                "status": "failed",
                "error": f"HTTP {answer.status_code}: {answer.text[:300]}",
            }
        ack: Ack = answer.json()
        ack.update(ms=round((time.perf_counter() - started) * 1000, 3), via="http")
        return ack

    async def notify(
        self, sequence: int, peers: Sequence[dict[str, Any]], timeout: float, change: dict[str, Any] | None = None
    ) -> dict[str, Ack]:
        # The change goes with the notice (the internal token, which opens /cluster/sync, vouches for it).
        acks = await asyncio.gather(*(self._one(sequence, peer, timeout, change) for peer in peers))
        return {peer["name"]: ack for peer, ack in zip(peers, acks, strict=True)}

    async def close(self) -> None:
        for lane in self._lanes.values():
            if lane.task is not None:
                lane.task.cancel()
        if self._http is not None:
            await self._http.aclose()


class RedisBus:
    """Notices and acknowledgements on the pub/sub channel ``splice:<cluster>:bus``."""

    def __init__(self, url: str, cluster: str, me: str, fallback: HttpBus) -> None:
        self.url = url
        self.channel = f"splice:{cluster}:bus"
        self.me = me
        self.fallback = fallback
        self.connected = False
        self._waiters: dict[int, tuple[set[str], dict[str, Ack], asyncio.Event, float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._publisher: Any = None
        self._answering: set[asyncio.Task[None]] = set()
        self._outbox: deque[bytes] = deque()
        self._peers: Sequence[dict[str, Any]] = ()
        self._sending: asyncio.Task[None] | None = None
        self._on_events: OnEvents | None = None

    @property
    def events_lost(self) -> int:
        """Events Redis did not take and the HTTP fallback could not deliver (each peer counted apart)."""
        return self.fallback.events_lost

    async def start(
        self, on_notice: OnNotice, on_reconnect: Callable[[], Awaitable[object]], on_events: OnEvents
    ) -> None:
        import redis.asyncio as redis

        self._publisher = redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)
        self._on_events = on_events
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(on_notice, on_reconnect, ready))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), 3)

    async def _listen(
        self, on_notice: OnNotice, on_reconnect: Callable[[], Awaitable[object]], ready: asyncio.Event
    ) -> None:
        import redis.asyncio as redis
        from redis.exceptions import RedisError

        first = True
        while True:
            client = redis.Redis.from_url(self.url, socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.connected = True
                    ready.set()
                    if not first:
                        logger.info("cluster bus: Redis is back; catching up from the ODB")
                        try:
                            await on_reconnect()
                        except OSError as exc:  # the ODB is away too (OdbUnavailable): Redis itself is fine
                            logger.warning("cluster bus: catching up failed (%s); the heartbeat tries again", exc)
                    first = False
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            await self._handle(json.loads(message["data"]), on_notice)
            except (RedisError, OSError) as exc:
                if self.connected or first:
                    logger.warning("cluster bus: Redis unreachable (%s); using HTTP and the ODB until it is back", exc)
                self.connected = False
                ready.set()
                first = False
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def _handle(self, message: dict[str, Any], on_notice: OnNotice) -> None:
        if message.get("kind") == "events":
            if message.get("origin") != self.me and self._on_events is not None:
                await self._on_events(message["events"])
        elif message.get("kind") == "notice" and message.get("origin") != self.me:
            sequence, origin = int(message["sequence"]), str(message["origin"])
            change = message.get("change")
            if not (isinstance(change, dict) and self.fallback.token) or not hmac.compare_digest(
                str(message.get("mac", "")), seal(self.fallback.token, sequence, origin, change)
            ):
                change = None
            task = asyncio.create_task(self._answer(sequence, origin, change, on_notice))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)
        elif message.get("kind") == "ack" and message.get("to") == self.me:
            waiter = self._waiters.get(int(message["sequence"]))
            if waiter is not None:
                names, acks, done, started = waiter
                elapsed = round((time.perf_counter() - started) * 1000, 3)
                acks[message["server"]] = {**message["ack"], "ms": elapsed, "via": "redis"}
                if names <= set(acks):
                    done.set()

    async def _answer(self, sequence: int, origin: str, change: dict[str, Any] | None, on_notice: OnNotice) -> None:
        ack = await on_notice(sequence, origin, change)
        await self._publish({"kind": "ack", "sequence": sequence, "to": origin, "server": self.me, "ack": ack})

    async def _publish(self, message: dict[str, Any]) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError

        data = json.dumps(message)
        try:
            await self._publisher.publish(self.channel, data)
        except (RedisConnectionError, OSError):
            # A connection left over from before Redis went away: drop the pool's connections, try once more.
            await self._publisher.connection_pool.disconnect()
            await self._publisher.publish(self.channel, data)

    def send_event(self, event: bytes, peers: Sequence[dict[str, Any]]) -> None:
        self._outbox.append(event)
        self._peers = peers
        if self._sending is None:
            self._sending = asyncio.create_task(self._publish_events())

    async def _publish_events(self) -> None:
        """Publish what the outbox holds, in order, each batch as one message; while Redis cannot take them, post
        them to the peers over HTTP (they find any loss out as for HTTP)."""
        from redis.exceptions import RedisError

        origin = json.dumps(self.me).encode()
        try:
            while self._outbox:
                batch = take_batch(self._outbox)
                try:
                    if not self.connected:
                        raise ConnectionError("not subscribed")
                    await self._publisher.publish(
                        self.channel, b'{"kind":"events","origin":' + origin + b',"events":[' + b",".join(batch) + b"]}"
                    )
                except (RedisError, OSError) as exc:
                    if self.connected:
                        logger.warning("cluster bus: cannot publish events on Redis (%s); posting them over HTTP", exc)
                        with contextlib.suppress(RedisError, OSError):  # reconnect for the next batch
                            await self._publisher.connection_pool.disconnect()
                    for event in batch:
                        self.fallback.send_event(event, self._peers)
        finally:
            self._sending = None

    async def flush(self, timeout: float) -> None:
        if self._sending is not None:
            await asyncio.wait([self._sending], timeout=timeout)
        await self.fallback.flush(timeout)

    async def settle(self, timeout: float) -> None:
        # Published is as far as Redis lets us see (its subscribers get it next); events sent over HTTP meanwhile.
        if self._sending is not None:
            await asyncio.wait([self._sending], timeout=timeout)
        await self.fallback.settle(timeout)

    async def notify(
        self, sequence: int, peers: Sequence[dict[str, Any]], timeout: float, change: dict[str, Any] | None = None
    ) -> dict[str, Ack]:
        from redis.exceptions import RedisError

        if not peers:
            return {}
        names = {peer["name"] for peer in peers}
        acks: dict[str, Ack] = {}
        done = asyncio.Event()
        self._waiters[sequence] = (names, acks, done, time.perf_counter())
        try:
            if not self.connected:
                raise ConnectionError("not subscribed")
            notice: dict[str, Any] = {"kind": "notice", "sequence": sequence, "origin": self.me}
            if change is not None and self.fallback.token:
                notice.update(change=change, mac=seal(self.fallback.token, sequence, self.me, change))
            await self._publish(notice)
        except (RedisError, OSError) as exc:
            logger.warning("cluster bus: cannot publish on Redis (%s); telling the servers over HTTP", exc)
            self._waiters.pop(sequence, None)
            return await self.fallback.notify(sequence, peers, timeout, change)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout)
        finally:
            self._waiters.pop(sequence, None)
        return {name: acks[name] if name in acks else timed_out(name, timeout) for name in names}

    async def close(self) -> None:
        if self._sending is not None:
            self._sending.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._publisher is not None:
            await self._publisher.aclose()
        await self.fallback.close()
