"""A module's page of the Deployments screen (``/deployments/module?path=...``): its versions (who, when, what),
the source of any version, the diff of two, roll back to a version, undeploy. The path is in the query string
(module paths have slashes)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page
from . import screen
from ._diff import outcomes, short_sha, unified

logger = logging.getLogger(__name__)

SCREEN = screen("deployments")
BASE = SCREEN.path + "/module"


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


def _path(value: str) -> str:
    return quote(value, safe="/")


def _version(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


async def versions(admin: AdminApi, path: str) -> dict[str, Any]:
    """``GET /modules/{path}/history``, newest version first, each with its short sha256."""
    answer = await admin.call("GET", f"/modules/{_path(path)}/history")
    rows = sorted(answer.get("versions", []), key=lambda v: -int(v["version"]))
    for row in rows:
        row["sha"] = short_sha(row.get("sha256"))
    return {"path": answer.get("path", path), "current": answer.get("current"), "rows": rows}


async def _source(admin: AdminApi, path: str, version: int) -> dict[str, Any]:
    answer: dict[str, Any] = await admin.call("GET", f"/modules/{_path(path)}/versions/{version}")
    return answer


def _diff_choice(rows: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    """The versions the diff form starts with: the newest deployed one and the deployed one before it."""
    deployed = [int(r["version"]) for r in rows if r.get("action") == "deploy"]
    if len(deployed) < 2:
        return None, None
    return deployed[1], deployed[0]


async def module_page(request: Request) -> Response:
    path = request.query_params.get("path", "")
    may_change = current_user(request).may_change
    try:
        found = await versions(_admin(request), path)
    except AdminError as exc:
        status = exc.status if 400 <= exc.status < 600 else 502
        return page(request, "screens/deployments_module.html", status, path=path, found=None, error=exc)
    before, after = _diff_choice(found["rows"])
    return page(
        request,
        "screens/deployments_module.html",
        path=path,
        found=found,
        error=None,
        may_change=may_change,
        diff_from=before,
        diff_to=after,
    )


async def versions_rows(request: Request) -> Response:
    path = request.query_params.get("path", "")
    found: dict[str, Any] | None = None
    error: AdminError | None = None
    try:
        found = await versions(_admin(request), path)
    except AdminError as exc:
        error = exc
    return fragment(
        request,
        "screens/deployments_versions.html",
        path=path,
        found=found,
        error=error,
        may_change=current_user(request).may_change,
    )


def _numbered(source: str) -> list[tuple[int, str]]:
    return list(enumerate(source.splitlines(), start=1))


async def source(request: Request) -> Response:
    path = request.query_params.get("path", "")
    version = _version(request.query_params.get("version"))
    if version is None:
        error = AdminError(400, "version: give a version number, such as version=3")
        return fragment(request, "screens/deployments_refused.html", 400, error=error)
    try:
        answer = await _source(_admin(request), path, version)
    except AdminError as exc:
        return fragment(request, "screens/deployments_refused.html", exc.status or 502, error=exc)
    text = answer.get("source")
    lines = _numbered(text) if isinstance(text, str) else None
    return fragment(request, "screens/deployments_source.html", path=path, version=answer, lines=lines)


async def diff(request: Request) -> Response:
    path = request.query_params.get("path", "")
    before, after = _version(request.query_params.get("from")), _version(request.query_params.get("to"))
    if before is None or after is None:
        error = AdminError(400, "diff: choose two versions (from and to)")
        return fragment(request, "screens/deployments_refused.html", 400, error=error)
    admin = _admin(request)
    try:
        old, new = await asyncio.gather(_source(admin, path, before), _source(admin, path, after))
    except AdminError as exc:
        return fragment(request, "screens/deployments_refused.html", exc.status or 502, error=exc)
    lines = unified(old.get("source") or "", new.get("source") or "", f"{path} v{before}", f"{path} v{after}")
    return fragment(request, "screens/deployments_diff.html", path=path, before=before, after=after, lines=lines)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    try:
        return {key: str(value) for key, value in form.items()}
    finally:
        await form.close()


async def rollback(request: Request) -> Response:
    user = current_user(request).name
    form = await _form(request)
    path, version = form.get("path", ""), _version(form.get("version"))
    # A version that is not a number goes as typed: the admin API says what is wrong with it.
    body = {
        "path": path,
        "version": version if version is not None else form.get("version"),
        "deployed_by": f"dashboard:{user}",
    }
    try:
        answer = await _admin(request).call("POST", "/rollback", body, actor=user)
    except AdminError as exc:
        return fragment(request, "screens/deployments_refused.html", exc.status or 502, error=exc)
    logger.info("dashboard user %s rolled %s back to v%s", user, path, version)
    return fragment(
        request,
        "screens/deployments_change.html",
        answer=answer,
        outcomes=outcomes(answer.get("servers")),
        what=f"Rolled {path} back to v{answer.get('rolled_back_to')}: now v{answer.get('version')}",
    )


async def undeploy(request: Request) -> Response:
    user = current_user(request).name
    path = (await _form(request)).get("path", "")
    body = {"paths": [path], "deployed_by": f"dashboard:{user}"}
    try:
        answer = await _admin(request).call("POST", "/undeploy", body, actor=user)
    except AdminError as exc:
        return fragment(request, "screens/deployments_refused.html", exc.status or 502, error=exc)
    logger.info("dashboard user %s undeployed %s", user, path)
    services = ", ".join(answer.get("services") or []) or "none"
    return fragment(
        request,
        "screens/deployments_change.html",
        answer=answer,
        outcomes=outcomes(answer.get("servers")),
        what=f"Undeployed {path} (services removed: {services})",
    )


def routes() -> list[BaseRoute]:
    return [
        Route(BASE, module_page),
        Route(BASE + "/versions", versions_rows),
        Route(BASE + "/source", source),
        Route(BASE + "/diff", diff),
        Route(BASE + "/rollback", rollback, methods=["POST"]),
        Route(BASE + "/undeploy", undeploy, methods=["POST"]),
    ]


__all__ = ["routes"]
