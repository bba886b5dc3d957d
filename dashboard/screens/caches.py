"""The Caches screen (``/caches``): every cache with each server's figures (entries, bytes, hits, misses: kept per
server, so asked of every server), forms to define, change and delete one; a cache's page (``/caches/{name}``)
browses its keys by prefix, shows, sets and deletes an entry, and clears the cache.

Fragments and actions live under ``/caches/-/`` (no cache's name starts with '-'), the cache and key in the query
string (names may hold '/'). Values are JSON typed by the user: a mistake is located (line, column) and nothing is
sent; everything else is the admin API's to judge, and its refusal is shown as it says it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page, refused
from . import screen
from .form_values import fields, parse_json, quoted, typed

SCREEN = screen("caches")
PART = SCREEN.path + "/-"
KEYS = 200
"""Keys shown at first; "more" asks for as many again."""
MAX_KEYS = 100_000
NUMBERS = ("max_entries", "max_bytes", "expiry", "max_value")
CHANGED = {"HX-Trigger": "caches-changed"}


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


async def overview(request: Request) -> dict[str, Any]:
    """The caches (definitions as the first server that answers has them) and each server's figures."""
    try:
        answers = await _admin(request).each_server("GET", "/caches")
    except AdminError as exc:
        return {"error": exc, "caches": [], "servers": [], "problems": {}}
    caches: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for info in (answer.value or {}).get("caches", []):
            row = caches.setdefault(info["name"], {**info, "figures": {}})
            row["figures"][answer.server] = info
    problems = {a.server: a.error for a in answers if a.error}
    return {
        "error": None,
        "caches": sorted(caches.values(), key=lambda c: c["name"]),
        "servers": [a.server for a in answers],
        "problems": problems,
    }


async def index(request: Request) -> Response:
    may_change = current_user(request).may_change
    view = await overview(request)
    return page(request, "screens/caches.html", screen=SCREEN, cache=None, may_change=may_change, **view)


async def rows(request: Request) -> Response:
    view = await overview(request)
    return fragment(request, "screens/caches_table.html", may_change=current_user(request).may_change, **view)


async def form(request: Request) -> Response:
    """The definition form, empty or filled with the cache ``?name=`` to change."""
    name = request.query_params.get("name", "")
    cache = None
    if name:
        view = await overview(request)
        cache = next((c for c in view["caches"] if c["name"] == name), None)
    return fragment(request, "screens/caches_form.html", cache=cache, may_change=current_user(request).may_change)


async def define(request: Request) -> Response:
    """POST: define a cache; PUT ``?name=``: change it; DELETE ``?name=``: delete it."""
    admin, actor = _admin(request), current_user(request).name
    name = request.query_params.get("name", "")
    try:
        if request.method == "DELETE":
            answer = await admin.call("DELETE", f"/caches/{quoted(name)}", actor=actor)
            response = fragment(request, "screens/caches_done.html", said=f"Cache '{answer['deleted']}' deleted.")
            response.headers.update(CHANGED)
            return response
        body = fields(await request.form(), texts=("name", "backend", "connection"), numbers=NUMBERS)
        if request.method == "PUT":
            answer = await admin.call("PUT", f"/caches/{quoted(name)}", body, actor=actor)
        else:
            answer = await admin.call("POST", "/caches", body, actor=actor)
    except AdminError as exc:
        return refused(request, exc)
    said = f"Cache '{answer['cache']['name']}' {'defined' if answer['created'] else 'changed'}."
    response = fragment(request, "screens/caches_done.html", said=said)
    response.headers.update(CHANGED)
    return response


async def _base(request: Request) -> str | None:
    """The URL of the server ``?server=`` names (``None``: any server)."""
    wanted = request.query_params.get("server", "")
    if not wanted:
        return None
    last = request.app.state.hub.last or {}
    servers = last.get("servers") or await _admin(request).servers()
    return next((s["url"] for s in servers if s["name"] == wanted), None)


async def cache_page(request: Request) -> Response:
    name = request.path_params["name"]
    view = await overview(request)
    cache = next((c for c in view["caches"] if c["name"] == name), None)
    may_change = current_user(request).may_change
    keys = await _keys(request, name, "", KEYS, None)
    return page(
        request,
        "screens/cache.html",
        200 if cache or view["error"] else 404,
        screen=SCREEN,
        name=name,
        cache=cache,
        servers=view["servers"],
        may_change=may_change,
        entry=None,
        **keys,
    )


async def _keys(request: Request, name: str, prefix: str, limit: int, server: str | None) -> dict[str, Any]:
    base = await _base(request) if server else None
    params = {"prefix": prefix, "limit": limit}
    try:
        answer = await _admin(request).call("GET", f"/caches/{quoted(name)}/keys", params=params, base=base)
    except AdminError as exc:
        return {
            "keys_error": exc,
            "keys": [],
            "truncated": False,
            "prefix": prefix,
            "limit": limit,
            "server": server or "",
        }
    return {
        "keys_error": None,
        "keys": answer["keys"],
        "truncated": answer["truncated"],
        "prefix": prefix,
        "limit": limit,
        "server": server or "",
    }


async def keys(request: Request) -> Response:
    query = request.query_params
    limit = typed(query.get("limit", "") or str(KEYS))
    limit = min(limit, MAX_KEYS) if isinstance(limit, int) and limit > 0 else KEYS
    found = await _keys(request, query.get("name", ""), query.get("prefix", ""), limit, query.get("server") or None)
    return fragment(
        request,
        "screens/caches_keys.html",
        name=query.get("name", ""),
        may_change=current_user(request).may_change,
        **found,
    )


async def entry(request: Request) -> Response:
    """GET: the entry ``?key=`` in the editor; PUT: set the form's entry; DELETE: delete ``?key=``."""
    name = request.query_params.get("name", "")
    admin, may_change = _admin(request), current_user(request).may_change
    if request.method == "GET":
        key = request.query_params.get("key", "")
        try:
            found = await admin.call("GET", f"/caches/{quoted(name)}/entries/{quoted(key)}", base=await _base(request))
        except AdminError as exc:
            return refused(request, exc)
        return fragment(request, "screens/caches_entry.html", name=name, entry=found, may_change=may_change)
    actor = current_user(request).name
    if request.method == "DELETE":
        key = request.query_params.get("key", "")
        try:
            await admin.call("DELETE", f"/caches/{quoted(name)}/entries/{quoted(key)}", actor=actor)
        except AdminError as exc:
            return refused(request, exc)
        response = fragment(request, "screens/caches_done.html", said=f"Entry '{key}' deleted on every server.")
        response.headers["HX-Trigger"] = "entries-changed"
        return response
    submitted = await request.form()
    key = str(submitted.get("key", ""))
    value, mistake = parse_json(str(submitted.get("value", "")), "value")
    if mistake is not None:
        return fragment(request, "screens/pubsub_mistake.html", 400, mistake=mistake)
    body = {"value": value, **fields(submitted, texts=("encoding",), numbers=("expiry",))}
    try:
        await admin.call("PUT", f"/caches/{quoted(name)}/entries/{quoted(key)}", body, actor=actor)
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/caches_done.html", said=f"Entry '{key}' set; every server gets it.")
    response.headers["HX-Trigger"] = "entries-changed"
    return response


async def clear(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        answer = await _admin(request).call("POST", f"/caches/{quoted(name)}/clear", actor=current_user(request).name)
    except AdminError as exc:
        return refused(request, exc)
    said = f"Cache '{name}' cleared on every server ({answer['cleared']} entries dropped on the one that answered)."
    response = fragment(request, "screens/caches_done.html", said=said)
    response.headers["HX-Trigger"] = "entries-changed"
    return response


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="caches"),
        Route(PART + "/rows", rows),
        Route(PART + "/form", form),
        Route(PART + "/define", define, methods=["POST", "PUT", "DELETE"]),
        Route(PART + "/keys", keys),
        Route(PART + "/entry", entry, methods=["GET", "PUT", "DELETE"]),
        Route(PART + "/clear", clear, methods=["POST"]),
        Route(SCREEN.path + "/{name:path}", cache_page),
    ]


__all__ = ["SCREEN", "routes"]
