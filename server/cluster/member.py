"""This server as a member of its cluster: liveness, catching up, and telling the others about changes.

Every ``sync_interval`` a server says it is alive (``servers.last_seen``) and compares the newest
deployment sequence in the ODB with the one it applied; if it is behind, it syncs. Notices on the bus
make that immediate; the periodic check makes a missed notice cost a delay, never a divergence.

Cluster events (``send_event`` / ``on_event``) are the other traffic: fire and forget, numbered per sender, with
``on_missed_events`` called when some may have been lost (``events``). The heartbeat carries this server's count
of sent events and refreshes the list of live peers that HTTP events go to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .bus import Ack, Bus
from .events import EventTracker

if TYPE_CHECKING:
    from ..config import ServerSettings, Settings
    from ..deploy.engine import DeploymentEngine

logger = logging.getLogger(__name__)


class Membership(Protocol):
    """What a member needs of the ODB (``splice.server.odb.OdbRepository`` is one)."""

    async def heartbeat(self, name: str, sequence: int, events: tuple[str, int] | None = None) -> int: ...

    async def mark_stopped(self, name: str) -> None: ...

    async def live_servers(self, within: float) -> list[dict[str, Any]]: ...


EventHandler = Callable[[dict[str, Any], str], Awaitable[None]]
"""Called on a server with an event's data and the name of the server that sent it."""

CONTROL = frozenset({"hello", "bye"})
"""Events of the membership itself, not given to ``on_event`` handlers: ``hello`` (this server started, or is back
after a pause: send to it now; not numbered, it changes nothing a peer keeps) and ``bye`` (it stops cleanly: none
of its events is lost when it starts again)."""
LIVENESS_FACTOR = 4
"""A server not seen for this many sync intervals (at least 3 s) is taken as down."""


class ClusterMember:
    def __init__(
        self,
        settings: Settings,
        server: ServerSettings,
        repository: Membership,
        engine: DeploymentEngine,
        bus: Bus,
        reload_config: Callable[[], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.server = server
        self.repository = repository
        self.engine = engine
        self.bus = bus
        self.reload_config = reload_config
        self._task: asyncio.Task[None] | None = None
        self._catching_up = asyncio.Lock()
        self._event_handlers: dict[str, list[EventHandler]] = {}
        self._missed_handlers: list[Callable[[], Awaitable[None]]] = []
        self.boot = secrets.token_hex(8)
        """This process's id in events: a server that starts again starts numbering its events again."""
        self.events_sent = 0
        self.events_received = 0
        self.events_missed = 0
        """How many times this server may have missed events (and told its ``on_missed_events`` handlers)."""
        self._tracker = EventTracker()
        self._peers: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._receiving = asyncio.Lock()
        self._from_threads: list[tuple[str, dict[str, Any]]] = []
        self._from_threads_lock = threading.Lock()
        self._odb_away_since: float | None = None
        """When heartbeats began to fail for want of the ODB (``None``: they go through)."""

    @property
    def liveness(self) -> float:
        return max(3.0, self.settings.sync_interval * LIVENESS_FACTOR)

    async def start(self) -> None:
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        self._peers = await self.live_peers()
        self._tracker.baseline(self._peers)
        await self.bus.start(self.on_notice, self._reconnected, self.receive_events)
        self._send("hello", {})  # the others add this server to the peers they send to now, not at their heartbeat
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._loop is not None:
            self._send("bye", {})  # the others know that nothing of this boot is lost when it starts again
            await self.bus.flush(1.0)
        await self.bus.close()
        with contextlib.suppress(Exception):
            await self.repository.mark_stopped(self.server.member)

    async def _beat(self) -> None:
        said_at = time.monotonic()  # when the last heartbeat that went through began (what last_seen shows)
        task = asyncio.current_task()
        while True:
            if task is not None and task.cancelling():
                # stop() cancelled a beat, and what it was awaiting turned the cancellation into an error of its own
                # (a driver's, caught below): end now, or stop() would wait on the next sleep for ever
                raise asyncio.CancelledError
            await asyncio.sleep(self.settings.sync_interval)
            try:
                counted, began = (self.boot, self.events_sent), time.monotonic()
                newest = await self.repository.heartbeat(self.server.member, self.engine.applied, counted)
                # Peers took this server as down if its last_seen grew older than the liveness window before this
                # heartbeat landed (it was paused, or the ODB out of reach): they sent it nothing meanwhile.
                away, said_at = time.monotonic() - said_at, began
                if away > self.liveness - self.settings.sync_interval / 2:
                    async with self._receiving:
                        await self.missed_events(f"this server was not seen alive for {away:.1f} s")
                    self._send("hello", {})  # back: the others send to it again from now on
                await self._check_events()
                if newest > self.engine.applied:
                    logger.info("behind the ODB (%s < %s): catching up", self.engine.applied, newest)
                    await self.catch_up()
                if self._odb_away_since is not None:
                    away_for = time.monotonic() - self._odb_away_since
                    logger.warning("heartbeat and catch-up work again (after %.1f s)", away_for)
                    self._odb_away_since = None
            except OSError as exc:  # the ODB (OdbUnavailable) or a peer cannot be reached: said once, not every beat
                if self._odb_away_since is None:
                    self._odb_away_since = time.monotonic()
                    logger.warning(
                        "heartbeat or catch-up failed (%s): serving what this server has; trying again every %s s",
                        exc,
                        self.settings.sync_interval,
                    )
            except Exception:
                logger.exception("heartbeat or catch-up failed; trying again in %s s", self.settings.sync_interval)

    async def catch_up(self, change: dict[str, Any] | None = None) -> Ack:
        """Sync with the ODB; reload channels and security if anything changed. With a notice's ``change`` (the
        deployment after the one this server applied), take it as it came instead of reading the ODB, if it applies.

        One at a time: a configuration change is reported to the sync that saw it, so a catch-up running beside
        another (a notice and a pickup batch) must not answer before the other's reload is done.
        """
        started = time.perf_counter()
        async with self._catching_up:
            result = await self.engine.take_change(change) if change is not None else None
            if result is None:
                result = await self.engine.sync()
            if result.config_changed:
                await self.reload_config()
        return {
            "server": self.server.member,
            "status": "failed" if result.error else "deployed",
            "sequence": self.engine.applied,
            "loaded": result.loaded,
            "removed": result.removed,
            "error": result.error,
            "sync_ms": round((time.perf_counter() - started) * 1000, 3),
            **result.timings,  # read_ms (the ODB) and load_ms (the import) inside sync_ms
        }

    async def on_notice(self, sequence: int, origin: str, change: dict[str, Any] | None = None) -> Ack:
        ack = await self.catch_up(change)
        if ack["status"] == "deployed" and self.engine.applied < sequence:
            ack.update(status="failed", error=f"the ODB does not show sequence {sequence} yet")
        return ack

    def on_event(self, kind: str, handler: EventHandler) -> None:
        """Call ``handler(data, origin)`` for every event of ``kind`` another server sends (``send_event``)."""
        self._event_handlers.setdefault(kind, []).append(handler)

    def on_missed_events(self, handler: Callable[[], Awaitable[None]]) -> None:
        """Call ``handler()`` whenever this server may have missed events (the bus was down, a peer's events
        skipped a number): what it keeps from events (a cache) must be dropped or refreshed."""
        self._missed_handlers.append(handler)

    async def settle_events(self, timeout: float = 2.0) -> None:
        """Wait (up to ``timeout``) until the events this server sent so far have reached the other servers: an
        admin change of a cache answers once every server has it, so whatever is asked next, wherever, sees it."""
        if self._loop is not None:
            await self.bus.settle(timeout)

    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event to every other live server, without waiting (fire and forget: the doorbell of pub/sub,
        a cache's set or delete). Callable from any thread; ``data`` must be JSON-able.

        What is guaranteed: each server gets one server's events in the order they were sent, each at most once.
        Not durable: an event may be lost (a peer unreachable for a moment, Redis down, a server killed before it
        sent), and then the server that missed it is told (``on_missed_events``) within a few heartbeats, or at
        once when a later event shows the gap. A server that was down starts with nothing to be stale about.
        """
        if self._loop is None:
            return  # not started: a tool, or a test without a cluster
        if threading.get_ident() == self._loop_thread:
            self._send(kind, data)
            return
        with self._from_threads_lock:  # one wake-up of the loop for what threads sent meanwhile, not one each
            self._from_threads.append((kind, data))
            if len(self._from_threads) > 1:
                return
        self._loop.call_soon_threadsafe(self._send_from_threads)

    def _send_from_threads(self) -> None:
        with self._from_threads_lock:
            waiting, self._from_threads = self._from_threads, []
        for kind, data in waiting:
            self._send(kind, data)

    def _send(self, kind: str, data: dict[str, Any]) -> None:
        if kind != "hello":
            self.events_sent += 1
        event = {
            "kind": "event",
            "event": kind,
            "data": data,
            "origin": self.server.member,
            "boot": self.boot,
            "n": self.events_sent,
        }
        self.bus.send_event(json.dumps(event, separators=(",", ":")).encode(), self._peers)

    async def receive_events(self, events: list[Any]) -> int:
        """Events another server sent (over HTTP or Redis), in its order: each one not missed before is given to
        the ``on_event`` handlers of its kind. How many were applied."""
        applied = 0
        async with self._receiving:
            for event in events:
                try:
                    origin, boot, n, kind = str(event["origin"]), str(event["boot"]), int(event["n"]), event["event"]
                    data = event.get("data")
                except (KeyError, TypeError, ValueError):
                    logger.warning("a cluster event that is not one: %.200r", event)
                    continue
                if origin == self.server.member:
                    continue
                self.events_received += 1
                if kind == "hello":
                    if all(peer["name"] != origin for peer in self._peers):
                        self._peers = await self.live_peers()
                    continue
                take, missed = self._tracker.accept(origin, boot, n, bye=kind == "bye")
                if missed:
                    await self.missed_events(missed)
                if take and kind not in CONTROL:
                    applied += 1
                    await self._dispatch(kind, data, origin)
        return applied

    async def _dispatch(self, kind: str, data: Any, origin: str) -> None:
        for handler in self._event_handlers.get(kind, ()):
            try:
                await handler(data, origin)
            except Exception:
                logger.exception("handling a %s event from %s failed", kind, origin)

    async def missed_events(self, reason: str) -> None:
        """This server may have missed events: tell the ``on_missed_events`` handlers (what kept anything from
        events drops it)."""
        self.events_missed += 1
        logger.info("cluster events may have been missed (%s): dropping what was kept from them", reason)
        for handler in list(self._missed_handlers):
            try:
                await handler()
            except Exception:
                logger.exception("reacting to missed cluster events failed")
        self._tracker.forgive()

    async def _check_events(self) -> None:
        """At a heartbeat: refresh the live peers events go to; compare what each said it sent with what came."""
        self._peers = await self.live_peers()
        reason = self._tracker.beat(self._peers)
        if reason:
            async with self._receiving:
                await self.missed_events(reason)

    async def _reconnected(self) -> Ack:
        """The Redis bus is back: events sent meanwhile are lost, and deployments may have been missed."""
        async with self._receiving:
            await self.missed_events("the Redis bus reconnected")
        return await self.catch_up()

    def event_stats(self) -> dict[str, Any]:
        """Counts of events sent, received, lost on the way out, and of times some may have been missed."""
        return {
            "boot": self.boot,
            "sent": self.events_sent,
            "received": self.events_received,
            "lost": self.bus.events_lost,
            "missed": self.events_missed,
            "senders": self._tracker.senders(),
        }

    async def live_peers(self) -> list[dict[str, Any]]:
        """The other servers seen alive lately."""
        return [s for s in await self.repository.live_servers(self.liveness) if s["name"] != self.server.member]

    def live_among(self, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The other members among ``servers`` (rows of the ODB's ``servers()``) seen alive lately: what
        ``live_peers()`` answers, from rows already read (a deployment reads them once for both uses)."""
        since = datetime.now(UTC) - timedelta(seconds=self.liveness)
        return [
            s
            for s in servers
            if s["name"] != self.server.member and s.get("last_seen") is not None and s["last_seen"] >= since
        ]

    async def propagate(
        self, sequence: int, peers: list[dict[str, Any]] | None = None, change: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Tell every other live server about ``sequence``; each one's outcome, this server first.

        ``peers`` may come from ``live_peers()`` started beside the deployment, to save its round trip; ``change``
        (``DeployResult.change``) goes with the notice where the bus carries it, so that peers need not read the ODB."""
        me = {"server": self.server.member, "status": "deployed", "sequence": self.engine.applied}
        if peers is None:
            peers = await self.live_peers()
        acks = await self.bus.notify(sequence, peers, self.settings.cluster_timeout, change)
        return [me, *(acks[peer["name"]] for peer in peers)]
