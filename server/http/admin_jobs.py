"""Admin API for scheduled jobs (``/splice/admin/jobs...``), and the endpoint the scheduler runs jobs through.

``POST /splice/admin/scheduler/dispatch`` takes a batch of runs, starts them all at once and streams
one JSON line per run as each finishes (``application/x-ndjson``): a thousand runs due in the same second
cost the scheduler one request, and their outcomes come back as they happen.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..core.context import current_cid
from ..core.errors import BadRequest, SpliceError
from ..core.service import Request as ServiceRequest
from ..core.service import SchedulerRun
from .operations import Handler, Operation
from .responses import dumps, error_response
from .schemas import jobs

if TYPE_CHECKING:
    from ..jobs import Jobs as JobManager
    from ..runtime import Runtime

logger = logging.getLogger(__name__)
_RUN_FIELDS = {"job_id": int, "slot_us": int, "job": str, "service": str, "cid": str}


def _jobs(runtime: Runtime) -> JobManager:
    if runtime.jobs is None:
        raise BadRequest("this server has no ODB connection for jobs")
    return runtime.jobs


async def list_jobs(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    leases = await runtime.repository.leases("scheduler")
    lease = leases.get("scheduler")
    active = None
    if lease is not None and lease["expires_at"].timestamp() > time.time():
        active = {"name": lease["holder"], "lease_expires": lease["expires_at"].isoformat()}
    manager = _jobs(runtime)
    last = await manager.last_runs()
    found = [{**job.as_json(), "last_run": _last(last.get(job.id))} for job in await manager.all()]
    return {"jobs": found, "scheduler": active}


def _last(run: Any) -> Any:
    return None if run is None else run.as_json()


async def create_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    replace = body.pop("replace", False)
    if not isinstance(replace, bool):
        raise BadRequest(f"field 'replace' must be true or false, got {replace!r}")
    origin = body.pop("created_by", "")
    if not isinstance(origin, str) or len(origin) > jobs.ORIGIN_MAX:
        raise BadRequest(f"field 'created_by' must be a string of at most {jobs.ORIGIN_MAX} characters, got {origin!r}")
    job = (await _jobs(runtime).create(body, origin or "admin-api", replace=replace)).as_json()
    if runtime.store.get(job["service"]) is None:
        job["warning"] = f"no service named '{job['service']}' is deployed yet: its runs fail until one is"
    return job


async def get_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return (await _jobs(runtime).get(request.path_params["name"])).as_json()


async def change_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return (await _jobs(runtime).change(request.path_params["name"], body)).as_json()


async def delete_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    await _jobs(runtime).delete(request.path_params["name"])
    return {"deleted": request.path_params["name"]}


async def pause_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return (await _jobs(runtime).pause(request.path_params["name"])).as_json()


async def resume_job(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return (await _jobs(runtime).resume(request.path_params["name"])).as_json()


async def run_job_now(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return (await _jobs(runtime).run_now(request.path_params["name"])).as_json()


async def job_history(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    raw = request.query_params.get("limit", "50")
    # ASCII digits only: str.isdigit() is true of '²' too, which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10_000:
        raise BadRequest(f"query parameter 'limit' must be a whole number from 1 to 10000, got {raw!r}")
    name = request.path_params["name"]
    return {"job": name, "runs": [run.as_json() for run in await _jobs(runtime).history(name, int(raw))]}


OPERATIONS = [
    Operation("GET", "/jobs", list_jobs, "Scheduled jobs, and which scheduler is active", jobs.Jobs),
    Operation(
        "POST",
        "/jobs",
        create_job,
        "Create a job (interval, cron or one-time)",
        jobs.Job,
        body=jobs.JobBody,
        handler_checks=True,  # jobs.spec.parse_job checks it, naming the field in its invalid_job error
        status=201,
        errors=(409, 413),
    ),
    Operation(
        "GET",
        "/jobs/{name:path}/history",
        job_history,
        "A job's runs, newest first: slot, status, server, error, lateness",
        jobs.JobRuns,
        query=jobs.HistoryQuery,
        handler_checks=True,
        errors=(404,),
    ),
    Operation("POST", "/jobs/{name:path}/pause", pause_job, "Pause a job", jobs.Job, errors=(404,)),
    Operation(
        "POST",
        "/jobs/{name:path}/resume",
        resume_job,
        "Resume a job from now on (slots passed while paused are not run)",
        jobs.Job,
        errors=(404,),
    ),
    Operation(
        "POST",
        "/jobs/{name:path}/run-now",
        run_job_now,
        "Run a job once now, besides its schedule",
        jobs.Job,
        errors=(404,),
    ),
    Operation("GET", "/jobs/{name:path}", get_job, "One job", jobs.Job, errors=(404,)),
    Operation(
        "PATCH",
        "/jobs/{name:path}",
        change_job,
        "Change a job: the fields given",
        jobs.Job,
        body=jobs.JobChange,
        handler_checks=True,
        errors=(404, 409, 413),
    ),
    Operation(
        "DELETE", "/jobs/{name:path}", delete_job, "Delete a job and its run history", jobs.DeletedJob, errors=(404,)
    ),
]


# -- the scheduler's dispatch endpoint ---------------------------------------------------------------------------


def _check_runs(body: Any) -> list[dict[str, Any]]:
    runs = body.get("runs") if isinstance(body, dict) else None
    if not isinstance(runs, list):
        raise BadRequest("field 'runs' must be a list")
    for index, run in enumerate(runs):
        if not isinstance(run, dict):
            raise BadRequest(f"runs[{index}] must be an object")
        for key, kind in _RUN_FIELDS.items():
            if not isinstance(run.get(key), kind):
                raise BadRequest(f"runs[{index}].{key} must be {kind.__name__}")
    return runs


async def _run_one(runtime: Runtime, run: dict[str, Any], scheduler: str) -> dict[str, Any]:
    request = ServiceRequest(run.get("payload"), channel="scheduler")
    request.scheduler = SchedulerRun(
        job=run["job"],
        job_id=run["job_id"],
        run=f"{run['job_id']}:{run['slot_us']}",
        slot=run.get("slot"),
        kind=run.get("kind", "scheduled"),
        attempt=run.get("attempt", 1),
        missed=run.get("missed", 0),
        scheduler=scheduler,
    )
    started = time.time_ns() // 1000
    outcome: dict[str, Any] = {"job_id": run["job_id"], "slot_us": run["slot_us"], "started_us": started}
    try:
        await runtime.invoker.call(run["service"], run.get("payload"), request=request, cid=run["cid"])
        outcome.update(status="ok", error=None)
    except SpliceError as exc:
        outcome.update(status="failed", error=str(exc))
    except Exception as exc:
        # What the invoker lets through (a service class whose constructor raises, say): still an outcome, or
        # the stream would wait for this run for ever.
        logger.exception("job %s [cid %s]: service %s failed", run["job"], run["cid"], run["service"])
        outcome.update(status="failed", error=f"service '{run['service']}' failed: {type(exc).__name__}: {exc}")
    outcome.update(finished_us=time.time_ns() // 1000, server=runtime.server.name)
    return outcome


async def _outcomes(runtime: Runtime, runs: list[dict[str, Any]], scheduler: str) -> AsyncIterator[bytes]:
    """Start every run now; yield their outcomes as they finish (several to a chunk when they finish together).

    If the scheduler goes away, the runs still finish (the server's shutdown waits for them too); only
    their outcomes are lost, and the scheduler records those runs as interrupted.
    """
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def done(task: asyncio.Task[dict[str, Any]], run: dict[str, Any]) -> None:
        if task.cancelled():
            queue.put_nowait(
                {
                    "job_id": run["job_id"],
                    "slot_us": run["slot_us"],
                    "status": "failed",
                    "error": "cancelled: the server is stopping",
                    "server": runtime.server.name,
                }
            )
        else:
            queue.put_nowait(task.result())

    for run in runs:
        task = asyncio.ensure_future(_run_one(runtime, run, scheduler))
        task.add_done_callback(functools.partial(done, run=run))
        runtime.invoker.track(task)
    left = len(runs)  # outcomes, not chunks: one chunk may carry several
    while left:
        lines = [await queue.get()]
        while not queue.empty():
            lines.append(queue.get_nowait())
        left -= len(lines)
        yield b"".join(dumps(line) + b"\n" for line in lines)


def dispatch_endpoint(runtime: Runtime) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        cid = current_cid.get()
        try:
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}") from None
            runs = _check_runs(body)
        except SpliceError as exc:
            return error_response(exc, cid)
        scheduler = str(body.get("scheduler") or "scheduler")
        return StreamingResponse(_outcomes(runtime, runs, scheduler), media_type="application/x-ndjson")

    return run


DISPATCH = Operation(
    "POST",
    "/scheduler/dispatch",
    cast("Handler", dispatch_endpoint),  # never called as a handler: routes() serves it as it is
    "The scheduler's batch of runs: starts them all, streams one JSON line per outcome",
    jobs.Outcome,
    body=jobs.Dispatch,
    media_type="application/x-ndjson",
)
"""For the document: the endpoint streams, so ``dispatch_endpoint`` serves it, not ``operations.endpoint``."""
