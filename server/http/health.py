"""Health: ``/splice/ping`` (liveness: the event loop and the worker pool answer) and ``/splice/ready`` (readiness:
the ODB answers and this server has caught up with the cluster's deploy sequence). No token: balancers and
Kubernetes probes call them.

``/splice/ping`` is what HAProxy checks: it answers 503 ``draining`` before a planned restart, and 503
``saturated`` while no plain ``def`` service call can start soon (every worker thread busy and the queue full, or
every thread held by a call whose caller already gave up), so the balancer sends calls to the other servers until
threads come free. ``/splice/ready`` answers 503 with the list of what is wrong (``odb``, ``behind``, ``draining``,
``saturated``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core.context import current_cid
from .responses import json_response

if TYPE_CHECKING:
    from ..runtime import Runtime

ODB_TIMEOUT = 2.0
"""Seconds ``/splice/ready`` waits for the ODB (probes have short timeouts of their own: Kubernetes' is 1 s by
default, so set the probe's ``timeoutSeconds`` above this)."""


def routes(runtime: Runtime) -> list[Route]:
    async def ping(request: Request) -> Response:
        cid = current_cid.get()
        answer: dict[str, Any] = {"status": "ok", "server": runtime.server.name, "cid": cid}
        if runtime.server.workers > 1:  # which worker process answered (the server's port is shared by them)
            answer["worker"] = runtime.server.worker
        pool = runtime.invoker.pool
        answer["threads"] = pool.stats()
        if runtime.draining:
            return json_response({**answer, "status": "draining"}, cid, 503)
        if pool.saturated():
            return json_response({**answer, "status": "saturated", "message": _saturated(pool.stats())}, cid, 503)
        return json_response(answer, cid)

    async def ready(request: Request) -> Response:
        cid = current_cid.get()
        problems: list[dict[str, str]] = []
        applied = runtime.engine.applied
        answer: dict[str, Any] = {"status": "ok", "server": runtime.server.name, "applied": applied, "latest": None}
        if runtime.server.workers > 1:
            answer["worker"] = runtime.server.worker
        try:
            async with asyncio.timeout(ODB_TIMEOUT):
                latest, _, _ = await runtime.repository.heads(applied)
        except (TimeoutError, SQLAlchemyError, OSError) as exc:
            why = f"did not answer within {ODB_TIMEOUT:g} s" if isinstance(exc, TimeoutError) else str(exc)[:300]
            problems.append({"code": "odb", "message": f"the ODB is not reachable: {why}"})
        else:
            answer["latest"] = latest
            if latest > applied:
                message = f"this server applied deploy sequence {applied}, the cluster is at {latest}: catching up"
                problems.append({"code": "behind", "message": message})
        if runtime.draining:
            problems.append({"code": "draining", "message": "this server is draining before a restart"})
        pool = runtime.invoker.pool
        if pool.saturated():
            problems.append({"code": "saturated", "message": _saturated(pool.stats())})
        answer["threads"] = pool.stats()
        if problems:
            return json_response({**answer, "status": "not_ready", "problems": problems, "cid": cid}, cid, 503)
        return json_response({**answer, "cid": cid}, cid)

    return [
        Route("/splice/ping", ping, methods=["GET", "HEAD"]),
        Route("/splice/ready", ready, methods=["GET", "HEAD"]),
    ]


def _saturated(threads: dict[str, int]) -> str:
    if threads["abandoned"] >= threads["size"]:
        return (
            f"all {threads['size']} worker threads are held by calls past their timeout (plain 'def' services that "
            "block): no plain 'def' call can run until one returns"
        )
    return (
        f"all {threads['size']} worker threads are busy and the queue is full ({threads['queued']} of "
        f"{threads['queue']} calls waiting): new plain 'def' calls are refused with 503"
    )


__all__ = ["routes"]
