"""What makes every screen live: one poller of the admin API, and a server-sent event stream per browser tab.

The poller asks ``GET /cluster`` every ``POLL`` seconds, whoever is watching (one call, however many tabs):

- ``changed``: the cluster's deployment sequence moved (a deploy, an undeploy, a change of configuration);
- ``cluster``: a server came or went, or reached another sequence;
- ``tick``: every ``TICK`` seconds, for what moves without a sequence (queue depths, job runs, metrics).

Pages subscribe with htmx's SSE extension (``sse-connect="/events"`` in ``base.html``) and refresh their live
regions with ``hx-trigger="sse:changed"`` and the like. Streams that need more (the log tail) are endpoints of
their own screens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .admin import AdminApi, AdminError

logger = logging.getLogger(__name__)

POLL = 1.0
TICK = 5.0
HEARTBEAT = 15.0
MAX_STREAMS = 200
"""Tabs open at once; one more answers 503 (each holds a connection and a queue)."""


class Hub:
    def __init__(self, admin: AdminApi) -> None:
        self.admin = admin
        self._queues: set[asyncio.Queue[tuple[str, str]]] = set()
        self._task: asyncio.Task[None] | None = None
        self.last: dict[str, Any] | None = None
        """The last ``GET /cluster`` answer (``None`` until one came); screens may show it without asking again."""
        self.error: str | None = None
        """Why the last poll failed (no admin API answered), else ``None``."""
        self.closed = asyncio.Event()
        """Set when the dashboard shuts down: streams of the screens' own (the log tail) end then too."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dashboard-hub")

    async def stop(self) -> None:
        self.closed.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for queue in list(self._queues):
            queue.put_nowait(("close", ""))

    def publish(self, event: str, data: Any = None) -> None:
        text = json.dumps(data if data is not None else {"at": time.time()})
        for queue in list(self._queues):
            if queue.qsize() < 100:  # a tab that does not read is not worth memory
                queue.put_nowait((event, text))

    async def _run(self) -> None:
        last_tick = time.monotonic()
        while True:
            await self._poll()
            if time.monotonic() - last_tick >= TICK:
                last_tick = time.monotonic()
                self.publish("tick")
            await asyncio.sleep(POLL)

    async def _poll(self) -> None:
        try:
            answer = await self.admin.call("GET", "/cluster")
        except AdminError as exc:
            if self.error is None:
                logger.warning("the admin API does not answer: %s", exc.message)
                self.publish("cluster", {"error": exc.message})
            self.error = exc.message
            return
        except Exception:
            logger.exception("polling the admin API failed")
            return
        before, self.last, self.error = self.last, answer, None
        if before is None or before.get("sequence") != answer.get("sequence"):
            self.publish("changed", {"sequence": answer.get("sequence")})
        if before is None or _servers(before) != _servers(answer):
            self.publish("cluster", {"sequence": answer.get("sequence")})

    async def stream(self, request: Request) -> Response:
        if len(self._queues) >= MAX_STREAMS:
            return Response("too many live streams open", status_code=503)
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queues.add(queue)

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        event, data = await asyncio.wait_for(queue.get(), HEARTBEAT)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if event == "close":
                        return
                    yield f"event: {event}\ndata: {data}\n\n"
            finally:
                self._queues.discard(queue)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _servers(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(s.get("name"), s.get("live"), s.get("last_sequence")) for s in answer.get("servers", [])]


__all__ = ["Hub"]
