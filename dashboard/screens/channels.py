"""The Channels screen: every channel of every kind, live; create one from a form made of its kind's schema; delete.

The admin API has no way to change a channel in place (``POST`` and ``DELETE`` only), and a delete then a create
would leave a moment without the channel: a channel's page shows its definition read-only, as a ``[[channels]]``
table to paste into splice.toml (``splice apply`` changes it in place), or to delete and create again.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page, refused
from . import _forms, screen

SCREEN = screen("channels")
LIMIT = 200
COLUMNS = ("path", "service", "methods", "security")
"""A channel row's columns besides its name and kind; the rest of a kind's fields are in ``options``."""


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


async def _rows(request: Request, q: str) -> tuple[list[dict[str, Any]], int]:
    channels: list[dict[str, Any]] = (await _admin(request).call("GET", "/channels"))["channels"]
    needle = q.strip().lower()
    if needle:
        channels = [c for c in channels if needle in " ".join(str(v) for v in _cells(c).values()).lower()]
    channels.sort(key=lambda c: str(c["name"]))
    return [{**c, "cells": _cells(c)} for c in channels[:LIMIT]], len(channels)


def _cells(row: dict[str, Any]) -> dict[str, str]:
    """What the table shows of a channel: where it listens (a path, a queue, a directory) and what it calls."""
    options = row.get("options") or {}
    kind = row.get("kind") or "rest"
    where = row.get("path") or ""
    if kind == "amqp":
        where = f"queue {options.get('queue', '')} on {options.get('connection', '')}"
    elif kind == "file":
        where = f"{options.get('directory', '')} ({options.get('pattern', '*')})"
    service = row.get("service") or ""
    if kind == "jsonrpc":
        service = ", ".join(options.get("services") or ["*"])
    methods = ", ".join(row.get("methods") or []) if kind == "rest" else ""
    return {"name": str(row["name"]), "kind": kind, "where": where, "service": service, "methods": methods}


def definition(row: dict[str, Any]) -> dict[str, Any]:
    """A stored channel as its kind's spec says it (the fields a ``[[channels]]`` table or a body holds)."""
    kind = row.get("kind") or "rest"
    values: dict[str, Any] = {"name": row["name"], "kind": kind}
    if kind in ("rest", "websocket", "jsonrpc"):
        values["path"] = row.get("path")
    if kind != "jsonrpc":
        values["service"] = row.get("service")
    if kind == "rest":
        values["methods"] = row.get("methods")
    if kind in ("rest", "websocket", "jsonrpc"):
        values["security"] = row.get("security")
    values.update(row.get("options") or {})
    return {key: value for key, value in values.items() if value is not None}


def toml_table(values: dict[str, Any]) -> str:
    """``values`` as a ``[[channels]]`` table (JSON strings, numbers, booleans and arrays are TOML values too)."""
    return "\n".join(["[[channels]]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())])


async def _choices(request: Request) -> dict[str, list[str]]:
    """Names to offer in the form: security definitions, AMQP connections (a failure offers none)."""
    admin = _admin(request)
    security: Any
    outgoing: Any
    security, outgoing = await asyncio.gather(
        admin.call("GET", "/security"), admin.call("GET", "/outgoing"), return_exceptions=True
    )
    return {
        "security": [s["name"] for s in security["security"]] if isinstance(security, dict) else [],
        "connection": [o["name"] for o in outgoing["outgoing"] if o.get("kind") == "amqp"]
        if isinstance(outgoing, dict)
        else [],
    }


def _form_values(request: Request, kinds: dict[str, _forms.Kind], **values: Any) -> dict[str, Any]:
    return _forms.context(request, kinds, **{"created": None, "curl": None, "choices": {}, **values})


async def index(request: Request) -> Response:
    q = request.query_params.get("q", "")
    try:
        kinds, (rows, total), choices = await asyncio.gather(
            _forms.kinds(request, "/channels"), _rows(request, q), _choices(request)
        )
    except AdminError as exc:
        return page(request, "screens/channels.html", screen=SCREEN, failure=exc, q=q)
    return page(
        request,
        "screens/channels.html",
        screen=SCREEN,
        failure=None,
        q=q,
        rows=rows,
        total=total,
        limit=LIMIT,
        **_form_values(request, kinds, choices=choices),
    )


async def rows(request: Request) -> Response:
    q = request.query_params.get("q", "")
    try:
        found, total = await _rows(request, q)
    except AdminError as exc:
        return refused(request, exc)
    may_change = current_user(request).may_change
    return fragment(
        request, "screens/channels_rows.html", rows=found, total=total, limit=LIMIT, q=q, may_change=may_change
    )


async def fields(request: Request) -> Response:
    """The chosen kind's fields (what was typed in fields of the same name is kept)."""
    try:
        kinds = await _forms.kinds(request, "/channels")
    except AdminError as exc:
        return refused(request, exc)
    values = {k: v for k, v in request.query_params.items() if k not in _forms.SECRETS}
    return fragment(request, "screens/channels_fields.html", **_form_values(request, kinds, values=values))


async def create(request: Request) -> Response:
    form = await request.form()
    submitted = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        kinds, choices = await asyncio.gather(_forms.kinds(request, "/channels"), _choices(request))
    except AdminError as exc:
        return refused(request, exc)
    kind = kinds.get(submitted.get("kind", ""))
    if kind is None:  # an unknown kind goes as typed: the admin API names the kinds it takes
        body: dict[str, Any] = {"name": submitted.get("name", "").strip(), "kind": submitted.get("kind", "")}
    else:
        body = _forms.body(kind, submitted, name=submitted.get("name", "").strip())
    try:
        answer = await _admin(request).call("POST", "/channels", body, actor=current_user(request).name)
    except AdminError as exc:
        values = _forms.typed(kind, submitted)
        context = _form_values(request, kinds, values=values, problems=_forms.problems(exc), error=exc, choices=choices)
        return fragment(request, "screens/channels_form.html", exc.status or 502, **context)
    curl = await _curl(request, answer) if answer.get("kind", "rest") == "rest" else None
    context = _form_values(request, kinds, created=answer, curl=curl, choices=choices)
    response = fragment(request, "screens/channels_form.html", 201, **context)
    response.headers["HX-Trigger"] = "channels-changed"
    return response


async def _curl(request: Request, channel: dict[str, Any]) -> str:
    """A command line calling a new REST channel through the cluster (its load balancer, or its first server)."""
    base = request.app.state.settings.admin[0].rstrip("/")
    methods = channel.get("methods") or ["GET"]
    method = next((m for m in methods if m != "HEAD"), methods[0]).upper()
    words = ["curl", "-i"]
    if method != "GET":
        words += ["-X", method]
    if channel.get("security"):
        words += await _credentials(request, str(channel["security"]))
    if method in ("POST", "PUT", "PATCH"):
        words += ["-H", "Content-Type: application/json", "-d", "{}"]
    # A path parameter needs a value to call the channel: 1 stands in for each ({id} -> 1, {name:path} -> 1).
    words.append(base + re.sub(r"\{[^}]*\}", "1", str(channel.get("path", ""))))
    return shlex.join(words)


async def _credentials(request: Request, name: str) -> list[str]:
    try:
        definitions = (await _admin(request).call("GET", "/security"))["security"]
    except AdminError:
        return []
    found = next((d for d in definitions if d["name"] == name), None)
    if found is None:
        return []
    if found["kind"] == "basic":
        return ["-u", f"{found['username']}:PASSWORD"]
    return ["-H", f"{found['header']}: KEY"]


async def delete(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        answer = await _admin(request).call(
            "DELETE", f"/channels/{quote(name, safe='')}", actor=current_user(request).name
        )
    except AdminError as exc:
        return refused(request, exc)
    response = fragment(request, "screens/channels_deleted.html", answer=answer)
    response.headers["HX-Trigger"] = "channels-changed"
    return response


async def show(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        found = await _admin(request).call("GET", "/channels")
    except AdminError as exc:
        return page(request, "screens/channels_show.html", screen=SCREEN, name=name, failure=exc, channel=None)
    row = next((c for c in found["channels"] if c["name"] == name), None)
    channel = definition(row) if row else None
    toml = toml_table(channel) if channel else ""
    return page(
        request,
        "screens/channels_show.html",
        screen=SCREEN,
        name=name,
        failure=None,
        channel=channel,
        toml=toml,
        may_change=current_user(request).may_change,
    )


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="channels"),
        Route(SCREEN.path, create, methods=["POST"]),
        Route("/channels/rows", rows),
        Route("/channels/fields", fields),
        Route("/channels/show", show),
        Route("/channels/delete", delete, methods=["POST"]),
    ]


__all__ = ["SCREEN", "definition", "routes", "toml_table"]
