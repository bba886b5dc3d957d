"""The Metrics screen: requests/s, error rate, p50 and p99 latency over the last hour, per minute, drawn as inline
SVG (``charts.py``) for the whole cluster, per server and per service (the busiest 20, or those a search finds).

Every server counts its own calls (``GET /metrics``): the page asks each live server and adds them up
(``metrics_data``). ``/metrics/service?name=...`` is one service's charts: a page of its own, or, asked by htmx,
a fragment other screens embed (it refreshes itself on ``sse:tick``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..charts import SMALL, Size, legend, line_chart
from ..render import fragment, page
from . import metrics_data as data
from . import screen

logger = logging.getLogger(__name__)

SCREEN = screen("metrics")
BUSIEST = 20
BIG = Size()


@dataclass
class Answers:
    """Each server's ``GET /metrics`` answer (those that gave one), the problems of the others, and now."""

    values: dict[str, dict[str, Any]]
    problems: dict[str, str]
    now: float


async def _servers(request: Request) -> list[dict[str, Any]]:
    last = request.app.state.hub.last
    if last and last.get("servers"):
        return [s for s in last["servers"] if s.get("live")]
    admin: AdminApi = request.app.state.admin
    return [s for s in await admin.servers() if s.get("live")]


async def fetch(request: Request, service: str | None = None) -> Answers:
    """``GET /metrics`` (``?service=`` when given) from every live server at once."""
    admin: AdminApi = request.app.state.admin
    try:
        servers = await _servers(request)
    except AdminError as exc:
        return Answers({}, {"cluster": exc.message}, 0.0)
    params = {"service": service} if service else None

    async def one(server: dict[str, Any]) -> tuple[str, Any, str | None]:
        try:
            return server["name"], await admin.call("GET", "/metrics", params=params, base=server["url"]), None
        except AdminError as exc:
            return server["name"], None, ("not available yet" if exc.status in (404, 405) else exc.message)

    answers = await asyncio.gather(*(one(s) for s in servers))
    values = {name: value for name, value, _ in answers if isinstance(value, dict)}
    problems = {name: problem for name, _, problem in answers if problem}
    now = max((float(v.get("now") or 0) for v in values.values()), default=0.0)
    return Answers(values, problems, now)


def charts(scope: data.Scope, size: Size, what: str) -> dict[str, Markup]:
    """The three charts of one scope; ``what`` names it in the titles ("the cluster", "service orders.get")."""
    return {
        "requests": line_chart(
            f"Requests per second, {what}, last hour by minute", scope.requests, unit=" per second", size=size
        ),
        "errors": line_chart(f"Error rate, {what}, last hour by minute", scope.errors, unit="%", size=size),
        "latency": line_chart(f"Latency, {what}, last hour by minute", scope.latency, unit=" ms", size=size),
    }


def _totals(name: str, slots: data.Slots) -> dict[str, Any]:
    calls, errors = slots.total_calls, slots.total_errors
    return {
        "name": name,
        "calls": calls,
        "errors": errors,
        "error_pct": (100 * errors / calls) if calls else None,
        "p50": slots.total_p50,
        "p99": slots.total_p99,
    }


def overview(answers: Answers, query: str) -> dict[str, Any]:
    """Everything the live region shows: the cluster's, each server's and the chosen services' charts."""
    end = data.last_minute(answers.now)
    servers = data.servers_slots(answers.values, end)
    cluster = data.scope("the cluster", {"cluster": data.combine(list(servers.values()))})
    by_server = data.scope("each server", servers)
    services = data.services_slots(answers.values, end)
    chosen = data.busiest(services, query, BUSIEST)
    shown = []
    for name in chosen:
        one = data.scope(name, {"all": data.combine(list(services[name].values()))})
        shown.append(
            {"name": name, "totals": _totals(name, one.totals), "charts": charts(one, SMALL, f"service {name}")}
        )
    return {
        "cluster": charts(cluster, BIG, "the cluster"),
        "servers": charts(by_server, BIG, "each server"),
        "server_legend": legend(by_server.requests),
        "latency_legend": legend(by_server.latency),
        "totals": [_totals("cluster", cluster.totals), *(_totals(n, s) for n, s in servers.items())],
        "services": shown,
        "service_count": len(services),
        "query": query,
        "problems": answers.problems,
        "has_metrics": bool(answers.values),
    }


async def index(request: Request) -> Response:
    query = request.query_params.get("q", "")
    view = overview(await fetch(request), query)
    return page(request, "screens/metrics.html", screen=SCREEN, **view)


async def live(request: Request) -> Response:
    query = request.query_params.get("q", "")
    view = overview(await fetch(request), query)
    return fragment(request, "screens/metrics_live.html", **view)


async def service(request: Request) -> Response:
    """One service's charts: a fragment for htmx (embedded elsewhere), else a page of its own."""
    name = request.query_params.get("name", "")
    answers = await fetch(request, name)
    end = data.last_minute(answers.now)
    parts = {server: slots[name] for server, slots in _by_server(answers, end).items() if name in slots}
    view: dict[str, Any] = {"name": name, "problems": answers.problems, "has_metrics": bool(answers.values)}
    view["found"] = any(slots.total_calls for slots in parts.values())
    if view["found"]:
        one = data.scope(name, {"all": data.combine(list(parts.values()))})
        view.update(totals=_totals(name, one.totals), charts=charts(one, BIG, f"service {name}"))
        view["recent"] = _recent(answers, name)
    if request.headers.get("hx-request"):
        return fragment(request, "screens/metrics_service.html", **view)
    return page(request, "screens/metrics_service_page.html", screen=SCREEN, **view)


def _by_server(answers: Answers, end: int) -> dict[str, dict[str, data.Slots]]:
    out: dict[str, dict[str, data.Slots]] = {}
    for service_name, servers in data.services_slots(answers.values, end).items():
        for server, slots in servers.items():
            out.setdefault(server, {})[service_name] = slots
    return out


def _recent(answers: Answers, name: str) -> list[dict[str, Any]]:
    """The service's last failures on every server, newest first (at most 10)."""
    found: list[dict[str, Any]] = []
    for server, value in answers.values.items():
        for one in value.get("services") or ():
            if one.get("name") == name:
                found.extend({**f, "server": server} for f in one.get("failures") or ())
    found.sort(key=lambda f: -float(f.get("at") or 0))
    return found[:10]


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="metrics"),
        Route(SCREEN.path + "/live", live),
        Route(SCREEN.path + "/service", service),
    ]


__all__ = ["SCREEN", "charts", "fetch", "overview", "routes"]
