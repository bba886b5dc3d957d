"""The Outgoing screen: connections to other systems (REST, SQL, Redis, AMQP) by kind; create, edit, delete, ping.

Forms come from the admin API's schema of each kind (``_forms``). Editing sends ``PUT /outgoing/{name}``, the
whole definition: an option left empty takes its default again, and secrets left empty keep the stored ones
(the admin API keeps them when a ``PUT`` names none; naming any replaces them all). Secrets are never shown:
the list says ``***`` as the admin API does, and a form's secret inputs are always empty.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page, refused
from . import _forms, screen

SCREEN = screen("outgoing")
SHOWN = ("name", "kind", "address")
"""A row's own columns; every other field of the connection is listed as an option."""


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


def _path(name: str) -> str:
    return f"/outgoing/{quote(name, safe='')}"


async def _groups(request: Request, kinds: dict[str, _forms.Kind]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The connections by kind (every kind the servers know, in the form's order), each with its options."""
    found: list[dict[str, Any]] = (await _admin(request).call("GET", "/outgoing"))["outgoing"]
    groups: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for row in sorted(found, key=lambda r: str(r["name"])):
        kind = kinds.get(str(row["kind"]))
        options = {k: _forms.show(v) for k, v in row.items() if k not in SHOWN and not _default(kind, k, v)}
        groups.setdefault(str(row["kind"]), []).append({**row, "options": options})
    return list(groups.items())


def _default(kind: _forms.Kind | None, name: str, value: Any) -> bool:
    """Whether a row's ``value`` is what the kind gives when left out (the list shows only what was set)."""
    if value in (None, "", {}, []):
        return True
    field = kind.field(name) if kind else None
    return field is not None and field.widget != "secret" and _forms.show(value) == _forms.show(field.default)


def _form(request: Request, kinds: dict[str, _forms.Kind], **values: Any) -> dict[str, Any]:
    return _forms.context(request, kinds, **{"saved": None, "editing": None, "stored_secrets": [], **values})


async def index(request: Request) -> Response:
    try:
        kinds = await _forms.kinds(request, "/outgoing")
        groups = await _groups(request, kinds)
    except AdminError as exc:
        return page(request, "screens/outgoing.html", screen=SCREEN, failure=exc)
    form = _form(request, kinds)
    return page(request, "screens/outgoing.html", screen=SCREEN, failure=None, groups=groups, **form)


async def rows(request: Request) -> Response:
    try:
        groups = await _groups(request, await _forms.kinds(request, "/outgoing"))
    except AdminError as exc:
        return refused(request, exc)
    return fragment(request, "screens/outgoing_rows.html", groups=groups, may_change=current_user(request).may_change)


async def fields(request: Request) -> Response:
    try:
        kinds = await _forms.kinds(request, "/outgoing")
    except AdminError as exc:
        return refused(request, exc)
    values = {k: v for k, v in request.query_params.items() if k not in _forms.SECRETS}
    editing = request.query_params.get("editing") or None
    return fragment(request, "screens/outgoing_fields.html", **_form(request, kinds, values=values, editing=editing))


async def edit_form(request: Request) -> Response:
    """The form filled in from a stored connection (``?name=``), to send back with ``PUT``."""
    name = request.query_params.get("name", "")
    try:
        kinds = await _forms.kinds(request, "/outgoing")
        row = await _admin(request).call("GET", _path(name))
    except AdminError as exc:
        return refused(request, exc)
    values = {k: _forms.show(v) for k, v in row.items() if k not in _forms.SECRETS}
    secrets = [k for k, v in row.items() if k in _forms.SECRETS and v]
    context = _form(request, kinds, values=values, editing=name, stored_secrets=secrets)
    return fragment(request, "screens/outgoing_form.html", **context)


async def new_form(request: Request) -> Response:
    try:
        kinds = await _forms.kinds(request, "/outgoing")
    except AdminError as exc:
        return refused(request, exc)
    return fragment(request, "screens/outgoing_form.html", **_form(request, kinds))


async def save(request: Request) -> Response:
    """Create (``POST /outgoing``) or, with ``editing``, change (``PUT /outgoing/{name}``) a connection."""
    form = await request.form()
    submitted = {k: v for k, v in form.items() if isinstance(v, str)}
    editing = submitted.get("editing") or None
    try:
        kinds = await _forms.kinds(request, "/outgoing")
    except AdminError as exc:
        return refused(request, exc)
    kind = kinds.get(submitted.get("kind", ""))
    name = editing or submitted.get("name", "").strip()
    body = _forms.body(kind, submitted, name=name) if kind else {"name": name, "kind": submitted.get("kind", "")}
    actor = current_user(request).name
    try:
        if editing:
            answer = await _admin(request).call("PUT", _path(editing), body, actor=actor)
        else:
            answer = await _admin(request).call("POST", "/outgoing", body, actor=actor)
    except AdminError as exc:
        values = _forms.typed(kind, submitted)
        context = _form(request, kinds, values=values, problems=_forms.problems(exc), error=exc, editing=editing)
        return fragment(request, "screens/outgoing_form.html", exc.status or 502, **context)
    response = fragment(request, "screens/outgoing_form.html", 200, **_form(request, kinds, saved=answer))
    response.headers["HX-Trigger"] = "outgoing-changed"
    return response


async def delete(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        answer = await _admin(request).call("DELETE", _path(name), actor=current_user(request).name)
    except AdminError as exc:
        return fragment(request, "screens/outgoing_result.html", exc.status or 502, error=exc, answer=None)
    response = fragment(request, "screens/outgoing_result.html", error=None, answer=answer)
    response.headers["HX-Trigger"] = "outgoing-changed"
    return response


async def ping(request: Request) -> Response:
    """Reach the connection's system from every live server: each server's ok or failed, its error, its time."""
    name = request.query_params.get("name", "")
    try:
        answer = await _admin(request).call("POST", f"{_path(name)}/ping", actor=current_user(request).name)
    except AdminError as exc:
        return fragment(request, "screens/outgoing_ping.html", exc.status or 502, name=name, error=exc, answer=None)
    return fragment(request, "screens/outgoing_ping.html", name=name, error=None, answer=answer)


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="outgoing"),
        Route(SCREEN.path, save, methods=["POST"]),
        Route("/outgoing/rows", rows),
        Route("/outgoing/fields", fields),
        Route("/outgoing/edit", edit_form),
        Route("/outgoing/new", new_form),
        Route("/outgoing/delete", delete, methods=["POST"]),
        Route("/outgoing/ping", ping, methods=["POST"]),
    ]


__all__ = ["SCREEN", "routes"]
