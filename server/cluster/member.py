"""This server as a member of its cluster: liveness, catching up, and telling the others about changes.

Every ``sync_interval`` a server says it is alive (``servers.last_seen``) and compares the newest
deployment sequence in the ODB with the one it applied; if it is behind, it syncs. Notices on the bus
make that immediate; the periodic check makes a missed notice cost a delay, never a divergence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .bus import Ack, Bus

if TYPE_CHECKING:
    from ..config import ServerSettings, Settings
    from ..deploy.engine import DeploymentEngine

logger = logging.getLogger(__name__)


class Membership(Protocol):
    """What a member needs of the ODB (``splice.server.odb.OdbRepository`` is one)."""

    async def heartbeat(self, name: str, sequence: int) -> int: ...

    async def mark_stopped(self, name: str) -> None: ...

    async def live_servers(self, within: float) -> list[dict[str, Any]]: ...


EventHandler = Callable[[dict[str, Any], str], Awaitable[None]]
"""Called on a server with an event's data and the name of the server that sent it."""

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

    @property
    def liveness(self) -> float:
        return max(3.0, self.settings.sync_interval * LIVENESS_FACTOR)

    async def start(self) -> None:
        await self.bus.start(self.on_notice, self.catch_up)
        self._task = asyncio.create_task(self._beat())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.bus.close()
        with contextlib.suppress(Exception):
            await self.repository.mark_stopped(self.server.name)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sync_interval)
            try:
                newest = await self.repository.heartbeat(self.server.name, self.engine.applied)
                if newest > self.engine.applied:
                    logger.info("behind the ODB (%s < %s): catching up", self.engine.applied, newest)
                    await self.catch_up()
            except Exception:
                logger.exception("heartbeat or catch-up failed; trying again in %s s", self.settings.sync_interval)

    async def catch_up(self) -> Ack:
        """Sync with the ODB; reload channels and security if anything changed.

        One at a time: a configuration change is reported to the sync that saw it, so a catch-up running beside
        another (a notice and a pickup batch) must not answer before the other's reload is done.
        """
        started = time.perf_counter()
        async with self._catching_up:
            result = await self.engine.sync()
            if result.config_changed:
                await self.reload_config()
        return {
            "server": self.server.name,
            "status": "failed" if result.error else "deployed",
            "sequence": self.engine.applied,
            "loaded": result.loaded,
            "removed": result.removed,
            "error": result.error,
            "sync_ms": round((time.perf_counter() - started) * 1000, 3),
        }

    async def on_notice(self, sequence: int, origin: str) -> Ack:
        ack = await self.catch_up()
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

    def send_event(self, kind: str, data: dict[str, Any]) -> None:
        """Send an event to every other live server, without waiting (fire and forget: the doorbell of pub/sub,
        a cache's set or delete). Not durable: a server that misses one is told through ``on_missed_events``."""
        # The transport (Redis pub/sub, else HTTP to each peer) is the cache issue's part of the bus.

    async def live_peers(self) -> list[dict[str, Any]]:
        """The other servers seen alive lately."""
        return [s for s in await self.repository.live_servers(self.liveness) if s["name"] != self.server.name]

    async def propagate(self, sequence: int, peers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """Tell every other live server about ``sequence``; each one's outcome, this server first.

        ``peers`` may come from ``live_peers()`` started beside the deployment, to save its round trip."""
        me = {"server": self.server.name, "status": "deployed", "sequence": self.engine.applied}
        if peers is None:
            peers = await self.live_peers()
        acks = await self.bus.notify(sequence, peers, self.settings.cluster_timeout)
        return [me, *(acks[peer["name"]] for peer in peers)]
