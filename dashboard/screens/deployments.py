"""The Deployments screen: the cluster's deployment history, the modules deployed now, and deploying a file
from the browser (through the one deployment path, ``POST /deploy``). A module's own page (versions, sources,
diffs, roll back, undeploy) is in ``_deployments_module``."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..admin import AdminApi, AdminError
from ..auth import current_user
from ..render import fragment, page
from . import _deployments_module, screen
from ._diff import outcomes

logger = logging.getLogger(__name__)

SCREEN = screen("deployments")
MAX_UPLOAD = 1024 * 1024
"""The largest file deployed from the browser (1 MiB): a module bigger than that is not typed by hand."""
FORM_SLACK = 16 * 1024
"""Room in the request for the multipart headers and the path field, on top of the file."""
HISTORY_LIMIT = 50
MODULES_LIMIT = 200


class TooLarge(Exception):
    pass


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


def _whole(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() else None


async def history(admin: AdminApi, before: int | None) -> dict[str, Any]:
    """The newest deployments (before ``before``); from ``GET /modules`` where the admin API has no history."""
    try:
        answer = await admin.call("GET", "/deployments", params={"limit": HISTORY_LIMIT, "before": before})
    except AdminError as exc:
        if exc.status != 404:
            raise
        # An admin API without GET /deployments: the modules deployed now, newest first, are the next best thing.
        modules = (await admin.call("GET", "/modules"))["modules"]
        rows = [
            {
                "sequence": m["sequence"],
                "action": f"deploy (v{m['version']})",
                "paths": [m["path"]],
                "deployed_by": None,
                "deployed_at": None,
            }
            for m in sorted(modules, key=lambda m: -int(m["sequence"]))
            if before is None or m["sequence"] < before
        ]
        return {"rows": rows[:HISTORY_LIMIT], "older": None, "fallback": True, "before": before}
    rows = list(answer.get("deployments", []))
    older = rows[-1]["sequence"] if len(rows) >= HISTORY_LIMIT else None
    return {"rows": rows, "older": older, "fallback": False, "before": before}


async def modules(admin: AdminApi, q: str) -> dict[str, Any]:
    found = (await admin.call("GET", "/modules"))["modules"]
    if q:
        needle = q.lower()
        found = [m for m in found if needle in m["path"].lower() or needle in " ".join(m["services"]).lower()]
    found.sort(key=lambda m: m["path"])
    return {"rows": found[:MODULES_LIMIT], "total": len(found), "limit": MODULES_LIMIT, "q": q}


async def _or_error(call: Any) -> tuple[Any, AdminError | None]:
    try:
        return await call, None
    except AdminError as exc:
        return None, exc


async def index(request: Request) -> Response:
    admin = _admin(request)
    q = request.query_params.get("q", "")
    shown, shown_error = await _or_error(history(admin, _whole(request.query_params.get("before"))))
    deployed, deployed_error = await _or_error(modules(admin, q))
    return page(
        request,
        "screens/deployments.html",
        screen=SCREEN,
        history=shown,
        history_error=shown_error,
        modules=deployed,
        modules_error=deployed_error,
        may_change=current_user(request).may_change,
        max_upload=MAX_UPLOAD,
    )


async def history_rows(request: Request) -> Response:
    shown, error = await _or_error(history(_admin(request), _whole(request.query_params.get("before"))))
    return fragment(request, "screens/deployments_history.html", history=shown, history_error=error)


async def module_rows(request: Request) -> Response:
    deployed, error = await _or_error(modules(_admin(request), request.query_params.get("q", "")))
    return fragment(request, "screens/deployments_modules.html", modules=deployed, modules_error=error)


def _problem(request: Request, status: int, message: str) -> Response:
    return fragment(request, "screens/deployments_refused.html", status, error=AdminError(status, message))


async def _read_upload(request: Request) -> FormData:
    """The multipart form, refused (``TooLarge``) as soon as more than the limit has come, whatever the
    Content-Length said (it may be missing, or wrong)."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD + FORM_SLACK:
        raise TooLarge(int(length))

    async def counted() -> AsyncGenerator[bytes, None]:
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > MAX_UPLOAD + FORM_SLACK:
                raise TooLarge(seen)
            yield chunk

    parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=4, max_part_size=FORM_SLACK)
    return await parser.parse()


async def deploy(request: Request) -> Response:
    user = current_user(request).name
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return _problem(request, 400, "send the file as multipart/form-data (the Deploy form does)")
    try:
        form = await _read_upload(request)
    except TooLarge:
        return _problem(request, 413, "the upload is over 1 MiB: too big to deploy from here")
    except MultiPartException as exc:
        return _problem(request, 400, f"the upload could not be read: {exc.message}")
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return _problem(request, 400, "file: choose a .py file to deploy")
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            return _problem(request, 413, f"{upload.filename}: over 1 MiB, too big to deploy from here")
        path = str(form.get("path") or "").strip() or upload.filename
    finally:
        await form.close()
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _problem(request, 400, f"{path}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x})")
    body = {"modules": [{"path": path, "source": source}], "deployed_by": f"dashboard:{user}"}
    try:
        answer = await _admin(request).call("POST", "/deploy", body, actor=user)
    except AdminError as exc:
        return fragment(request, "screens/deployments_refused.html", exc.status or 502, error=exc)
    logger.info("dashboard user %s deployed %s (sequence %s)", user, path, answer.get("sequence"))
    response = fragment(
        request, "screens/deployments_result.html", answer=answer, outcomes=outcomes(answer.get("servers"))
    )
    response.headers["HX-Trigger"] = DEPLOYED  # the history and module tables now, not at the hub's next poll
    return response


DEPLOYED = "deployed"
"""The event a deploy's answer raises (``HX-Trigger``): the live tables refresh at once."""


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="deployments"),
        Route(SCREEN.path + "/history", history_rows),
        Route(SCREEN.path + "/modules", module_rows),
        Route(SCREEN.path + "/deploy", deploy, methods=["POST"]),
        *_deployments_module.routes(),
    ]


__all__ = ["MAX_UPLOAD", "SCREEN", "routes"]
