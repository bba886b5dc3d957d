"""The Services screen: the list (searched, at most ``LIMIT`` rows), one service's page, and invoking it.

The list is three admin calls whatever the number of services (``/services``, ``/modules``, ``/cluster``, at
once): the cluster is kept in step, so a module's sequence against each live server's tells how many run it.
A service's page shows its module's source, its declared fields, the channels that call it and its recent
calls on every server (``/metrics?service=``); the invoke form parses the payload here (a JSON error names its
line and column, and nothing is sent) and sends the rest to ``POST /invoke`` as the user typed it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page
from . import _servers, screen

SCREEN = screen("services")
LIMIT = 200
"""Rows of the list shown at most; the rest is found by searching."""
CALLS = 20
"""Recent calls and failures shown on a service's page (all servers merged, newest first)."""


def matching(services: list[dict[str, Any]], q: str) -> list[dict[str, Any]]:
    """The services whose name, module or path holds ``q`` (any case), by name."""
    needle = q.strip().lower()
    found = [
        s
        for s in services
        if not needle
        or needle in str(s.get("name", "")).lower()
        or needle in str(s.get("module", "")).lower()
        or needle in str(s.get("path", "")).lower()
    ]
    return sorted(found, key=lambda s: str(s.get("name", "")))


def running_on(cluster: dict[str, Any] | None, sequence: int | None) -> tuple[int, int]:
    """(live servers that applied ``sequence``, live servers): who runs a module deployed at that sequence."""
    live = _servers.live(cluster)
    if sequence is None:
        return len(live), len(live)
    return sum(1 for s in live if int(s.get("last_sequence") or 0) >= sequence), len(live)


@dataclass(frozen=True)
class Deployed:
    """The services and each module's sequence, as of one deployment sequence of the cluster."""

    sequence: int
    services: list[dict[str, Any]]
    modules: dict[str, int]


async def deployed(request: Request) -> tuple[Deployed, dict[str, Any] | None]:
    """What is deployed, and the cluster (servers, sequence). ``/services`` and ``/modules`` are big with
    1,000 services (~0.3 s each), and change only with the deployment sequence: the answer is kept for the
    sequence the hub saw last, once every live server applied it (the one asked had, then)."""
    state = request.app.state
    cluster: dict[str, Any] | None = state.hub.last
    kept: Deployed | None = getattr(state, "services_deployed", None)
    if cluster is not None and kept is not None and kept.sequence == cluster.get("sequence"):
        return kept, cluster
    admin: AdminApi = state.admin
    services, modules, (cluster, _) = await asyncio.gather(
        admin.call("GET", "/services"), admin.call("GET", "/modules"), _servers.cluster(admin)
    )
    sequence = int((cluster or {}).get("sequence") or 0)
    found = Deployed(
        sequence,
        list(services.get("services", [])),
        {str(m["path"]): int(m.get("sequence") or 0) for m in modules.get("modules", [])},
    )
    live = _servers.live(cluster)
    if cluster is not None and live and all(int(s.get("last_sequence") or 0) >= sequence for s in live):
        state.services_deployed = found
    return found, cluster


async def _rows_values(request: Request) -> dict[str, Any]:
    q = request.query_params.get("q", "")[:200]
    try:
        found, cluster = await deployed(request)
    except AdminError as exc:
        return {"q": q, "rows": [], "more": 0, "total": 0, "error": exc}
    matched = matching(found.services, q)
    rows = []
    for s in matched[:LIMIT]:
        running, live = running_on(cluster, found.modules.get(str(s.get("path"))))
        rows.append({**s, "running": running, "live": live})
    return {"q": q, "rows": rows, "more": max(len(matched) - LIMIT, 0), "total": len(matched), "error": None}


async def index(request: Request) -> Response:
    return page(request, "screens/services.html", screen=SCREEN, **await _rows_values(request))


async def rows(request: Request) -> Response:
    values = await _rows_values(request)
    response = fragment(request, "screens/services_rows.html", **values)
    # The search box's requests keep the page's address in step, so a reload or a shared link shows the same.
    response.headers["HX-Replace-Url"] = "/services" + (f"?{urlencode({'q': values['q']})}" if values["q"] else "")
    return response


def _when(at: Any) -> str:
    try:
        return datetime.fromtimestamp(float(at)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError):
        return str(at)


def _newest(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(calls, key=lambda c: -float(c.get("at") or 0))[:CALLS]


async def _calls(admin: AdminApi, name: str, live: list[dict[str, Any]]) -> dict[str, Any]:
    """Recent calls and failures of ``name`` on every live server, merged newest first."""
    answers = await _servers.each(admin, live, "GET", "/metrics", {"service": name})
    recent: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    errors = []
    for answer in answers:
        if answer.error is not None or not isinstance(answer.value, dict):
            errors.append(f"{answer.server}: {answer.error}")
            continue
        for entry in answer.value.get("services", []):
            if entry.get("name") != name:
                continue
            for into, key in ((recent, "recent"), (failures, "failures")):
                into.extend({**c, "server": answer.server, "when": _when(c.get("at"))} for c in entry.get(key, []))
    available = len(errors) < len(answers)
    return {"recent": _newest(recent), "failures": _newest(failures), "calls_errors": errors, "available": available}


async def _source(admin: AdminApi, service: dict[str, Any]) -> tuple[list[str] | None, str | None]:
    path, version = service.get("path"), service.get("version")
    try:
        answer = await admin.call("GET", f"/modules/{quote(str(path), safe='/')}/versions/{version}")
    except AdminError as exc:
        return None, exc.message if exc.status not in (404, 405) else "source not available"
    source = answer.get("source")
    if source is None:
        return None, "source not available"
    return str(source).splitlines(), None


async def service_page(request: Request) -> Response:
    admin: AdminApi = request.app.state.admin
    name = request.path_params["name"]
    try:
        service, channels, (cluster, _) = await asyncio.gather(
            admin.call("GET", f"/services/{quote(name, safe='/:')}"),
            admin.call("GET", "/channels"),
            _servers.cluster(admin),
        )
    except AdminError as exc:
        return page(
            request,
            "screens/services_missing.html",
            exc.status if exc.status == 404 else 502,
            name=name,
            error=exc,
            screen=SCREEN,
        )
    live = _servers.live(cluster)
    (lines, source_note), calls = await asyncio.gather(_source(admin, service), _calls(admin, name, live))
    return page(
        request,
        "screens/services_one.html",
        screen=SCREEN,
        service=service,
        name=name,
        example=example_payload(service),
        lines=lines,
        source_note=source_note,
        channels=[c for c in channels.get("channels", []) if c.get("service") == name],
        servers=live,
        may_change=current_user(request).may_change,
        **calls,
    )


async def calls_region(request: Request) -> Response:
    admin: AdminApi = request.app.state.admin
    name = request.query_params.get("name", "")
    cluster, _ = await _servers.cluster(admin)
    calls = await _calls(admin, name, _servers.live(cluster))
    return fragment(request, "screens/services_calls.html", name=name, **calls)


def example_payload(service: dict[str, Any]) -> str:
    """A payload to start from: the declared input fields with their defaults (``{}`` when none is declared)."""
    fields = {f["name"]: f.get("default") for f in service.get("input") or [] if isinstance(f, dict) and "name" in f}
    return json.dumps(fields, indent=2, ensure_ascii=False)


def parse_payload(text: str) -> tuple[Any, str | None]:
    """The payload the user typed (empty: ``null``), or where it is not JSON: ``payload: line 2, column 5: ...``."""
    if not text.strip():
        return None, None
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"payload: line {exc.lineno}, column {exc.colno}: {exc.msg}"


async def invoke(request: Request) -> Response:
    admin: AdminApi = request.app.state.admin
    form = await request.form(max_files=0, max_fields=8)
    name = str(form.get("service", ""))
    server = str(form.get("server", ""))
    payload, problem = parse_payload(str(form.get("payload", "")))
    values: dict[str, Any] = {"service": name, "server": server or "any server", "problem": problem}
    values.update(answer=None, error=None, cid=None, ms=0.0, pretty=None)
    if problem is not None:
        return fragment(request, "screens/services_invoke.html", 422, **values)
    base = None
    if server:  # a name from the cluster's list, never a URL from the form: the token goes where base points
        cluster, _ = await _servers.cluster(admin)
        base = next((s["url"] for s in _servers.live(cluster) if s.get("name") == server), None)
        if base is None:
            values["problem"] = f"server: {server} is not a live server of the cluster"
            return fragment(request, "screens/services_invoke.html", 422, **values)
    began = time.perf_counter()
    try:
        body = {"service": name, "payload": payload}
        values["answer"] = await admin.call("POST", "/invoke", body, actor=current_user(request).name, base=base)
        values["cid"] = values["answer"].get("cid")
        values["pretty"] = json.dumps(values["answer"].get("payload"), indent=2, ensure_ascii=False)
    except AdminError as exc:
        values["error"] = exc
        values["cid"] = exc.cid or exc.body.get("cid")  # a failed service's cid is beside its error, not in it
        values["pretty"] = json.dumps(exc.body, indent=2, ensure_ascii=False) if exc.body else None
    values["ms"] = (time.perf_counter() - began) * 1000
    return fragment(request, "screens/services_invoke.html", **values)


def routes() -> list[BaseRoute]:
    # Fragments and actions under /services/-/ : no service name starts with "-", so none is shadowed.
    return [
        Route(SCREEN.path, index, name="services"),
        Route("/services/-/rows", rows, name="services-rows"),
        Route("/services/-/calls", calls_region, name="services-calls"),
        Route("/services/-/invoke", invoke, methods=["POST"], name="services-invoke"),
        Route("/services/{name:path}", service_page, name="service"),
    ]


__all__ = ["LIMIT", "SCREEN", "matching", "parse_payload", "routes", "running_on"]
