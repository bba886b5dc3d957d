"""The Security screen: security definitions (HTTP Basic, API keys) channels check callers with; create, delete.

A definition's secret (``password``, ``key``) goes from the form to the admin API, which keeps only a salted
hash: no page ever holds it, not even the form shown again after a refusal (its secret input comes back empty).
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

SCREEN = screen("security")


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


async def _rows(request: Request) -> list[dict[str, Any]]:
    """Every definition (no secret: the admin API never answers one) with the channels that use it."""
    admin = _admin(request)
    found: list[dict[str, Any]] = (await admin.call("GET", "/security"))["security"]
    users: dict[str, list[str]] = {}
    for channel in (await admin.call("GET", "/channels"))["channels"]:
        if channel.get("security"):
            users.setdefault(str(channel["security"]), []).append(str(channel["name"]))
    return [{**row, "used_by": sorted(users.get(row["name"], []))} for row in sorted(found, key=lambda r: r["name"])]


def _form(request: Request, kinds: dict[str, _forms.Kind], **values: Any) -> dict[str, Any]:
    return _forms.context(request, kinds, **{"created": None, **values})


async def index(request: Request) -> Response:
    try:
        kinds = await _forms.kinds(request, "/security")
        found = await _rows(request)
    except AdminError as exc:
        return page(request, "screens/security.html", screen=SCREEN, failure=exc)
    return page(request, "screens/security.html", screen=SCREEN, failure=None, rows=found, **_form(request, kinds))


async def rows(request: Request) -> Response:
    try:
        found = await _rows(request)
    except AdminError as exc:
        return refused(request, exc)
    return fragment(request, "screens/security_rows.html", rows=found, may_change=current_user(request).may_change)


async def fields(request: Request) -> Response:
    try:
        kinds = await _forms.kinds(request, "/security")
    except AdminError as exc:
        return refused(request, exc)
    values = {k: v for k, v in request.query_params.items() if k not in _forms.SECRETS}
    return fragment(request, "screens/security_fields.html", **_form(request, kinds, values=values))


async def create(request: Request) -> Response:
    form = await request.form()
    submitted = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        kinds = await _forms.kinds(request, "/security")
    except AdminError as exc:
        return refused(request, exc)
    kind = kinds.get(submitted.get("kind", ""))
    name = submitted.get("name", "").strip()
    body = _forms.body(kind, submitted, name=name) if kind else {"name": name, "kind": submitted.get("kind", "")}
    try:
        answer = await _admin(request).call("POST", "/security", body, actor=current_user(request).name)
    except AdminError as exc:
        # What was typed comes back, but never the secret (``typed`` leaves secrets out).
        context = _form(request, kinds, values=_forms.typed(kind, submitted), problems=_forms.problems(exc), error=exc)
        return fragment(request, "screens/security_form.html", exc.status or 502, **context)
    response = fragment(request, "screens/security_form.html", 201, **_form(request, kinds, created=answer))
    response.headers["HX-Trigger"] = "security-changed"
    return response


async def delete(request: Request) -> Response:
    """Delete a definition; the admin API refuses (409) while a channel uses it, and says which."""
    name = request.query_params.get("name", "")
    try:
        answer = await _admin(request).call(
            "DELETE", f"/security/{quote(name, safe='')}", actor=current_user(request).name
        )
    except AdminError as exc:
        return fragment(request, "screens/security_result.html", exc.status or 502, error=exc, answer=None)
    response = fragment(request, "screens/security_result.html", error=None, answer=answer)
    response.headers["HX-Trigger"] = "security-changed"
    return response


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="security"),
        Route(SCREEN.path, create, methods=["POST"]),
        Route("/security/rows", rows),
        Route("/security/fields", fields),
        Route("/security/delete", delete, methods=["POST"]),
    ]


__all__ = ["SCREEN", "routes"]
