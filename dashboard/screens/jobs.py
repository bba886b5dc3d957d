"""The Jobs screen: the scheduled jobs (schedule, next run, paused, last run) and which scheduler is active;
creating a job, running it now, pausing, resuming, deleting; a job's page with its runs and an edit form.

Job names may hold slashes: the page is ``/jobs/{name:path}``, and the screen's own fragments and actions live
under ``/jobs/-/`` (no job name starts with ``-``) with the name in the query string or the form.
"""

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
from . import _jobform, screen

logger = logging.getLogger(__name__)

SCREEN = screen("jobs")
OWN = SCREEN.path + "/-"
PAGE_SIZE = 50
"""Jobs shown at once (GET /jobs gives each job's last run)."""
RUNS_LIMIT = 50
CHANGED = "jobs-changed"
"""The event an action's answer raises (``HX-Trigger``) so that the table refreshes at once."""


def _admin(request: Request) -> AdminApi:
    admin: AdminApi = request.app.state.admin
    return admin


def _job_path(name: str) -> str:
    return "/jobs/" + quote(name, safe="/:")


def _whole(text: str | None, default: int) -> int:
    return int(text) if text and text.isascii() and text.isdigit() else default


async def listing(admin: AdminApi, q: str, number: int) -> dict[str, Any]:
    answer = await admin.call("GET", "/jobs")
    jobs = sorted(answer.get("jobs", []), key=lambda j: j["name"])
    if q:
        needle = q.lower()
        jobs = [j for j in jobs if needle in j["name"].lower() or needle in j["service"].lower()]
    pages = max(1, -(-len(jobs) // PAGE_SIZE))
    number = min(max(number, 1), pages)
    shown = jobs[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    return {
        "rows": [{**job, "last": job.get("last_run")} for job in shown],
        "scheduler": answer.get("scheduler"),
        "total": len(jobs),
        "q": q,
        "page": number,
        "pages": pages,
    }


async def _listing(request: Request) -> tuple[dict[str, Any] | None, AdminError | None]:
    q = request.query_params.get("q", "")
    try:
        return await listing(_admin(request), q, _whole(request.query_params.get("page"), 1)), None
    except AdminError as exc:
        return None, exc


async def index(request: Request) -> Response:
    jobs, error = await _listing(request)
    blank = {key: "" for key in (*_jobform.TRIGGER_FIELDS, "name", "service", "payload", "retries", "backoff")}
    blank.update(kind="interval", unit="seconds", misfire="run_once", paused="")
    return page(
        request,
        "screens/jobs.html",
        screen=SCREEN,
        jobs=jobs,
        error=error,
        form=blank,
        form_meta=_form_meta(),
        may_change=current_user(request).may_change,
    )


def _form_meta() -> dict[str, Any]:
    return {"kinds": _jobform.KINDS, "units": _jobform.UNITS, "misfires": _jobform.MISFIRES}


async def rows(request: Request) -> Response:
    jobs, error = await _listing(request)
    return fragment(
        request, "screens/jobs_rows.html", jobs=jobs, error=error, may_change=current_user(request).may_change
    )


async def _form(request: Request) -> dict[str, str]:
    form = await request.form(max_files=0, max_fields=40, max_part_size=64 * 1024)
    try:
        return {key: str(value) for key, value in form.items()}
    finally:
        await form.close()


def _refused(request: Request, error: AdminError) -> Response:
    return fragment(
        request, "screens/jobs_refused.html", error.status if 400 <= error.status < 600 else 502, error=error
    )


def _mistake(request: Request, mistake: _jobform.Mistake) -> Response:
    error = AdminError(400, f"{mistake.field}: {mistake.message}", {"error": {"field": mistake.field}})
    return _refused(request, error)


def _done(request: Request, message: str, job: dict[str, Any] | None = None) -> Response:
    response = fragment(request, "screens/jobs_done.html", message=message, job=job)
    response.headers["HX-Trigger"] = CHANGED
    return response


async def create(request: Request) -> Response:
    user = current_user(request).name
    body, mistake = _jobform.body(await _form(request))
    if mistake is not None:
        return _mistake(request, mistake)
    body["created_by"] = f"dashboard:{user}"
    try:
        job = await _admin(request).call("POST", "/jobs", body, actor=user)
    except AdminError as exc:
        return _refused(request, exc)
    logger.info("dashboard user %s created job %s", user, job.get("name"))
    return _done(request, f"Created job {job['name']}: {job.get('schedule', '')}", job)


async def _action(request: Request, action: str, words: str) -> Response:
    user = current_user(request).name
    name = (await _form(request)).get("name", "")
    try:
        if action == "delete":
            job = await _admin(request).call("DELETE", _job_path(name), actor=user)
        else:
            job = await _admin(request).call("POST", f"{_job_path(name)}/{action}", actor=user)
    except AdminError as exc:
        return _refused(request, exc)
    logger.info("dashboard user %s: job %s %s", user, name, action)
    response = _done(request, f"{words} {name}", job if action != "delete" else None)
    if action == "delete" and request.headers.get("hx-current-url", "").split("?")[0].endswith(_job_path(name)):
        response.headers["HX-Redirect"] = SCREEN.path  # deleted from its own page: back to the list
    return response


async def run_now(request: Request) -> Response:
    return await _action(request, "run-now", "Run now requested (the scheduler starts it within a second):")


async def pause(request: Request) -> Response:
    return await _action(request, "pause", "Paused")


async def resume(request: Request) -> Response:
    return await _action(request, "resume", "Resumed")


async def delete(request: Request) -> Response:
    return await _action(request, "delete", "Deleted")


async def edit(request: Request) -> Response:
    user = current_user(request).name
    form = await _form(request)
    name = form.get("name", "")
    admin = _admin(request)
    try:
        job = await admin.call("GET", _job_path(name))
    except AdminError as exc:
        return _refused(request, exc)
    changed, mistake = _jobform.changes(form, job)
    if mistake is not None:
        return _mistake(request, mistake)
    if not changed:
        return fragment(request, "screens/jobs_done.html", message=f"Nothing changed in {name}", job=None)
    try:
        job = await admin.call("PATCH", _job_path(name), changed, actor=user)
    except AdminError as exc:
        return _refused(request, exc)
    logger.info("dashboard user %s changed job %s: %s", user, name, ", ".join(sorted(changed)))
    return _done(request, f"Changed {', '.join(sorted(changed))} of {name}", job)


async def _job_and_runs(request: Request, name: str) -> dict[str, Any]:
    admin = _admin(request)
    job, history = await asyncio.gather(
        admin.call("GET", _job_path(name)),
        admin.call("GET", _job_path(name) + "/history", params={"limit": RUNS_LIMIT}),
    )
    return {"job": job, "runs": history.get("runs", [])}


async def runs(request: Request) -> Response:
    name = request.query_params.get("name", "")
    try:
        found, error = await _job_and_runs(request, name), None
    except AdminError as exc:
        found, error = None, exc
    return fragment(
        request,
        "screens/jobs_runs.html",
        name=name,
        found=found,
        error=error,
        may_change=current_user(request).may_change,
    )


async def job_page(request: Request) -> Response:
    name = request.path_params["name"]
    may_change = current_user(request).may_change
    try:
        found = await _job_and_runs(request, name)
    except AdminError as exc:
        status = exc.status if 400 <= exc.status < 600 else 502
        return page(request, "screens/jobs_job.html", status, name=name, found=None, error=exc, may_change=may_change)
    return page(
        request,
        "screens/jobs_job.html",
        name=name,
        found=found,
        error=None,
        form=_jobform.form_values(found["job"]),
        form_meta=_form_meta(),
        may_change=may_change,
    )


def routes() -> list[BaseRoute]:
    return [
        Route(SCREEN.path, index, name="jobs"),
        Route(OWN + "/rows", rows),
        Route(OWN + "/runs", runs),
        Route(OWN + "/create", create, methods=["POST"]),
        Route(OWN + "/run-now", run_now, methods=["POST"]),
        Route(OWN + "/pause", pause, methods=["POST"]),
        Route(OWN + "/resume", resume, methods=["POST"]),
        Route(OWN + "/delete", delete, methods=["POST"]),
        Route(OWN + "/edit", edit, methods=["PATCH"]),
        Route(SCREEN.path + "/{name:path}", job_page),
    ]


__all__ = ["SCREEN", "routes"]
