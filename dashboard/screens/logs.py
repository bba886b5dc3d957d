"""The Logs screen: the servers' own logs, filtered and merged by time, and tailed live.

``/logs`` asks ``GET /logs`` of every selected server at once (the last ``LIMIT`` matching lines of each) and
shows them merged by time. ``/logs/stream`` (same filters, plus where each server's page left off) is an event
stream of its own: it asks every selected live server for what was written since its cursor every ``POLL``
seconds and sends new lines as one HTML fragment (event ``lines``, at most ``MAX_LINES`` lines each) that htmx
appends to ``#log-lines``. It ends when the browser goes away or the dashboard shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, ServerAnswer
from ..render import environment, page
from . import _servers, screen

logger = logging.getLogger(__name__)

SCREEN = screen("logs")
LIMIT = 200
"""Lines asked of each server for the page."""
MAX_LINES = 200
"""Lines in one event of the stream at most (more are sent in several events)."""
POLL = 0.75
HEARTBEAT = 15.0
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CURSOR = "cursor."
"""Query parameters ``cursor.<server>``: where the page's lines of that server ended (the stream goes on there)."""


@dataclass(frozen=True)
class Filters:
    server: str = ""
    level: str = ""
    service: str = ""
    cid: str = ""
    q: str = ""

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        level = query.get("level", "").upper()
        return cls(
            server=query.get("server", "")[:200],
            level=level if level in LEVELS else "",
            service=query.get("service", "")[:200].strip(),
            cid=query.get("cid", "")[:100].strip(),
            q=query.get("q", "")[:200],
        )

    def params(self) -> dict[str, str]:
        """What ``GET /logs`` filters by (the server is chosen by whom it is asked of)."""
        found = {"level": self.level, "service": self.service, "cid": self.cid, "q": self.q}
        return {k: v for k, v in found.items() if v}

    def query(self) -> dict[str, str]:
        return {k: v for k, v in (("server", self.server), *self.params().items()) if v}

    def servers(self, cluster: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        return [s for s in _servers.live(cluster) if not self.server or s.get("name") == self.server]


def merged(answers: Iterable[ServerAnswer]) -> list[dict[str, Any]]:
    """Every answer's lines, each with its server's name and the message cut into first line and the rest (a
    traceback), oldest first (the servers' times, as written)."""
    lines = []
    for answer in answers:
        if answer.error is not None or not isinstance(answer.value, dict):
            continue
        for line in answer.value.get("lines", []):
            message = str(line.get("message", ""))
            head, _, rest = message.partition("\n")
            cid = str(line.get("cid") or "")
            lines.append(
                {
                    "at": str(line.get("at", "")),
                    "level": str(line.get("level", "")),
                    "source": line.get("service") or line.get("logger") or "",
                    "cid": "" if cid == "-" else cid,  # "-": logged outside any call
                    "server": answer.server,
                    "head": head,
                    "rest": rest,
                }
            )
    lines.sort(key=lambda line: line["at"])
    return lines


def cursors(answers: Iterable[ServerAnswer]) -> dict[str, str]:
    return {
        a.server: str(a.value["cursor"])
        for a in answers
        if a.error is None and isinstance(a.value, dict) and a.value.get("cursor") is not None
    }


async def index(request: Request) -> Response:
    admin: AdminApi = request.app.state.admin
    filters = Filters.of(request.query_params)
    cluster, error = await _servers.cluster(admin)
    servers = filters.servers(cluster)
    answers = await _servers.each(admin, servers, "GET", "/logs", {**filters.params(), "limit": LIMIT})
    stream = {**filters.query(), **{CURSOR + name: c for name, c in cursors(answers).items()}}
    return page(
        request,
        "screens/logs.html",
        screen=SCREEN,
        filters=filters,
        levels=LEVELS,
        all_servers=[s["name"] for s in (cluster or {}).get("servers", [])],
        error=error,
        problems=[f"{a.server}: {a.error}" for a in answers if a.error is not None],
        lines=merged(answers),
        limit=LIMIT,
        stream_url="/logs/stream?" + urlencode(stream),
    )


def event(lines: list[dict[str, Any]]) -> str:
    """One SSE ``lines`` event: the lines' HTML, each of its lines a ``data:`` line."""
    html = environment.get_template("screens/logs_lines.html").render(lines=lines)
    data = "\n".join(f"data: {row}" for row in html.splitlines() if row.strip())
    return f"event: lines\n{data}\n\n"


class Tail:
    """One browser's tail: a cursor per server, asked for what came since."""

    def __init__(self, admin: AdminApi, filters: Filters, start: dict[str, str]) -> None:
        self.admin = admin
        self.filters = filters
        self.cursors = dict(start)

    async def _one(self, server: dict[str, Any]) -> ServerAnswer:
        name = str(server["name"])
        cursor = self.cursors.get(name)
        params: dict[str, Any] = {**self.filters.params(), "limit": MAX_LINES if cursor else 1}
        if cursor:
            params["after"] = cursor
        answer = await _servers.one(self.admin, server, "GET", "/logs", params)
        if answer.error is None and isinstance(answer.value, dict) and answer.value.get("cursor") is not None:
            self.cursors[name] = str(answer.value["cursor"])
            if not cursor:  # a server the page did not hear from: its tail starts now, nothing from before
                answer.value = {**answer.value, "lines": []}
        elif answer.error is not None and not answer.error.startswith("no admin API answers"):
            # A refused cursor (the server restarted and its log rotated): start again from its end.
            self.cursors.pop(name, None)
        return answer

    async def poll(self, cluster: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        servers = self.filters.servers(cluster)
        return merged(await asyncio.gather(*(self._one(s) for s in servers)))


async def stream(request: Request) -> Response:
    hub = request.app.state.hub
    filters = Filters.of(request.query_params)
    start = {k[len(CURSOR) :]: v for k, v in request.query_params.items() if k.startswith(CURSOR) and v}
    tail = Tail(request.app.state.admin, filters, start)
    closed: asyncio.Event = hub.closed

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        beat = time.monotonic()
        while not closed.is_set() and not await request.is_disconnected():
            try:
                lines = await tail.poll(hub.last)
            except Exception:  # one bad poll must not end the tail: log it, try again
                logger.exception("tailing the servers' logs failed")
                lines = []
            for begin in range(0, len(lines), MAX_LINES):
                yield event(lines[begin : begin + MAX_LINES])
                beat = time.monotonic()
            if time.monotonic() - beat >= HEARTBEAT:
                yield ": keep-alive\n\n"
                beat = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed.wait(), POLL)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def routes() -> list[BaseRoute]:
    return [Route(SCREEN.path, index, name="logs"), Route("/logs/stream", stream, name="logs-stream")]


__all__ = ["LEVELS", "MAX_LINES", "SCREEN", "Filters", "Tail", "cursors", "event", "merged", "routes"]
