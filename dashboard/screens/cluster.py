"""The Cluster screen ("/"): every server (live or down, in step or behind), the bus, the scheduler, the balancer.

One ``GET /cluster``, then ``GET /server`` and ``GET /debug`` on every live server at once, ``GET /jobs`` for the
active scheduler, and a ``GET /server`` through the load balancer when the dashboard's admin URL is one. The
servers' region refreshes on the hub's ``cluster`` and ``changed`` events.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..render import fragment, page
from . import _servers, screen

SCREEN = screen("cluster")


@dataclass
class ServerRow:
    name: str
    url: str
    live: bool
    state: str
    """"in step", "behind (seq N of M)", or "down"."""
    last_seen: str | None
    pid: int | None = None
    uptime: str = ""
    services: int | None = None
    modules: int | None = None
    load_failures: list[str] = field(default_factory=list)
    debug: str = ""
    error: str | None = None


@dataclass
class Balancer:
    url: str
    answered_by: str | None = None
    ms: float = 0.0
    error: str | None = None


def duration(seconds: float) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``5 min 3 s``, ``12 s``: an uptime at a glance."""
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {s} s"
    return f"{s} s"


def _debug(answer: Any) -> str:
    points = answer.get("attach_points") if isinstance(answer, dict) else None
    if points:
        return ", ".join(f"{p.get('host')}:{p.get('port')}" for p in points)
    return "not listening"


async def _rows(admin: AdminApi, answer: dict[str, Any]) -> list[ServerRow]:
    sequence = int(answer.get("sequence", 0))
    servers = list(answer.get("servers", []))
    live = _servers.live(answer)
    infos, debugs = await asyncio.gather(
        _servers.each(admin, live, "GET", "/server"), _servers.each(admin, live, "GET", "/debug")
    )
    info = {a.server: a for a in infos}
    debug = {a.server: a for a in debugs}
    now = time.time()
    rows = []
    for s in servers:
        seq = int(s.get("last_sequence") or 0)
        state = "down" if not s.get("live") else "in step" if seq >= sequence else f"behind (seq {seq} of {sequence})"
        row = ServerRow(s["name"], s["url"], bool(s.get("live")), state, s.get("last_seen"), s.get("pid"))
        got = info.get(row.name)
        if got is not None and got.error is None and isinstance(got.value, dict):
            row.pid = got.value.get("pid", row.pid)
            row.uptime = duration(now - float(got.value.get("started_at", now)))
            row.services = got.value.get("services")
            row.modules = got.value.get("modules")
            row.load_failures = [str(f) for f in got.value.get("load_failures", [])]
        elif got is not None:
            row.error = got.error
        dbg = debug.get(row.name)
        if dbg is not None:
            row.debug = _debug(dbg.value) if dbg.error is None else f"unknown: {dbg.error}"
        rows.append(row)
    return rows


async def _scheduler(admin: AdminApi) -> tuple[dict[str, Any] | None, str | None]:
    try:
        answer = await admin.call("GET", "/jobs")
    except AdminError as exc:
        return None, exc.message
    return answer.get("scheduler"), None


async def _balancers(admin: AdminApi, admin_urls: tuple[str, ...], answer: dict[str, Any]) -> list[Balancer]:
    """The dashboard's admin URLs that are no server's: load balancers, each asked ``GET /server``."""
    known = {str(s.get("url", "")).rstrip("/") for s in answer.get("servers", [])}
    found = [Balancer(url) for url in admin_urls if url.rstrip("/") not in known]

    async def ping(balancer: Balancer) -> None:
        began = time.perf_counter()
        try:
            reply = await admin.call("GET", "/server", base=balancer.url)
            balancer.answered_by = str(reply.get("name"))
        except AdminError as exc:
            balancer.error = exc.message
        balancer.ms = (time.perf_counter() - began) * 1000

    await asyncio.gather(*(ping(b) for b in found))
    return found


async def _values(request: Request) -> dict[str, Any]:
    admin: AdminApi = request.app.state.admin
    answer, error = await _servers.cluster(admin)
    if answer is None:
        return {"answer": None, "error": error, "rows": [], "scheduler": None, "scheduler_error": None, "balancers": []}
    rows, (scheduler, scheduler_error), balancers = await asyncio.gather(
        _rows(admin, answer), _scheduler(admin), _balancers(admin, request.app.state.settings.admin, answer)
    )
    return {
        "answer": answer,
        "error": None,
        "rows": rows,
        "scheduler": scheduler,
        "scheduler_error": scheduler_error,
        "balancers": balancers,
    }


async def index(request: Request) -> Response:
    return page(request, "screens/cluster.html", screen=SCREEN, **await _values(request))


async def live_region(request: Request) -> Response:
    return fragment(request, "screens/cluster_live.html", **await _values(request))


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="cluster"),
        Route("/cluster/live", live_region, name="cluster-live"),
    ]


__all__ = ["SCREEN", "duration", "routes"]
