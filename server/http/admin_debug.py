"""Admin API for debugging a server: ``GET|POST /splice/admin/debug``, ``POST /splice/admin/debug/restart`` and
``POST /splice/admin/debug/pycharm``.

Each call acts on the server that answers it; ``splice debug ...`` calls every server of the cluster. A server of
several workers (``[[servers]] workers``) answers through whichever worker takes the call: ``GET /debug``,
``POST /debug`` ``{"enabled": true}`` and ``POST /debug/pycharm`` are passed on to the server's other workers (at
their private URLs, from the ODB's ``servers`` rows, with the caller's ``Authorization``), and the answer lists
the attach points of all of them (each with ``worker``, ``member`` and its private ``url``). ``{"enabled":
false}`` acts on the worker that answers only: ``splice debug disable`` calls each worker at its own URL, one at
a time, so the others keep serving the server's port (a worker of several does not drain: its ping stays 200).

Turning debugpy off restarts the server (debugpy cannot stop listening). So that no request fails meanwhile, the
server first drains: ``/splice/ping`` answers 503 and the balancer's health checks take it out of rotation while
it keeps answering what still comes. ``POST /debug/restart`` then restarts it at once (what ``splice debug
disable`` calls once HAProxy shows the server out); a client that does not call it gets the restart after
``DRAIN_LIMIT`` seconds anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request

from ..debug import DebugError
from ..settings import split_member
from .operations import Operation
from .schemas.runtime import DebugAnswer, DebugBody, PycharmBody

if TYPE_CHECKING:
    from ..debug import Debugger
    from ..runtime import Runtime

logger = logging.getLogger(__name__)

RESTART_AFTER = 0.2
"""Seconds between answering ``POST /debug/restart`` and the restart, so the answer gets out."""
DRAIN_LIMIT = 10.0
"""Seconds a server drains before it restarts without the debugger when nobody asks it to restart sooner: ample
for HAProxy's checks (every 500 ms, out after 2 failed) or a cloud balancer's to take it out of rotation."""


FORWARDED = "x-splice-debug-forwarded"
"""Marks a call one worker passed on to its siblings (who must not pass it on again)."""
FORWARD_TIMEOUT = 30.0
"""Seconds a worker waits for a sibling's answer (enabling debugpy imports it: well under a second)."""


def _debugger(runtime: Runtime) -> Debugger:
    return runtime.debugger


def _own(runtime: Runtime, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` with this worker's private URL on its attach points (where ``splice debug`` reaches it alone)."""
    if runtime.private_url is not None:
        for point in (*answer.get("attach_points", []), answer.get("configured") or {}):
            point["url"] = runtime.private_url
    return answer


async def _siblings(
    runtime: Runtime, request: Request, method: str, path: str, body: Any, strict: bool = True
) -> list[dict[str, Any]]:
    """The answers of this server's other workers to the same call (none for a server of one process, or a call a
    sibling passed on); ``DebugError`` naming each worker that failed (``strict``), else a warning in the log."""
    server = runtime.server
    if server.workers <= 1 or request.headers.get(FORWARDED):
        return []
    rows = [r for r in await runtime.cluster.live_peers() if split_member(str(r["name"]))[0] == server.name]
    headers = {FORWARDED: "1"}
    if "authorization" in request.headers:
        headers["Authorization"] = request.headers["authorization"]
    import httpx  # here: only a server of several workers passes calls on (~6 MiB of every server otherwise)

    async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT) as client:
        answers = await asyncio.gather(
            *(client.request(method, f"{r['url']}/splice/admin{path}", json=body, headers=headers) for r in rows),
            return_exceptions=True,
        )
    found: list[dict[str, Any]] = []
    failed: list[str] = []
    for row, answer in zip(rows, answers, strict=True):
        if isinstance(answer, BaseException):
            failed.append(f"{row['name']} at {row['url']}: {type(answer).__name__}: {answer}")
        elif answer.status_code != 200:
            failed.append(f"{row['name']} at {row['url']}: {answer.status_code} {answer.text[:300]}")
        else:
            found.append(answer.json())
    if failed and strict:
        raise DebugError("not every worker of this server did it: " + "; ".join(failed))
    if failed:
        logger.warning("debugging: workers that did not answer (left out): %s", "; ".join(failed))
    return found


def _together(answer: dict[str, Any], others: list[dict[str, Any]]) -> dict[str, Any]:
    """This worker's answer with the attach points of its siblings, by worker."""
    points = [p for a in (answer, *others) for p in a.get("attach_points", [])]
    answer["attach_points"] = sorted(points, key=lambda p: int(p.get("worker") or 0))
    answer["enabled"] = bool(answer["enabled"] or any(a.get("enabled") for a in others))
    return answer


async def debug_info(runtime: Runtime, request: Request, body: None) -> Any:
    answer = _own(runtime, _debugger(runtime).info())
    return _together(answer, await _siblings(runtime, request, "GET", "/debug", None, strict=False))


async def set_debug(runtime: Runtime, request: Request, body: DebugBody) -> Any:
    """``{"enabled": true[, "host": "127.0.0.1"]}`` listens with debugpy; ``{"enabled": false}`` stops debugging."""
    debugger = _debugger(runtime)
    if body.enabled:
        answer = _own(runtime, await anyio.to_thread.run_sync(debugger.enable, body.host))
        forwarded = body.model_dump(mode="json", exclude_none=True)
        return _together(answer, await _siblings(runtime, request, "POST", "/debug", forwarded))
    answer = _own(runtime, await anyio.to_thread.run_sync(debugger.disable))
    if debugger.restart_requested and runtime.server.workers > 1:
        # One worker of several: the others serve the port meanwhile, so no draining (its ping would take the
        # whole server out of the balancer); it restarts when asked (/debug/restart) or after DRAIN_LIMIT.
        asyncio.get_running_loop().call_later(DRAIN_LIMIT, runtime.shutdown.set)
        return answer
    if debugger.restart_requested and not runtime.draining:
        runtime.draining = True  # the balancer's checks now see 503 and send new requests elsewhere
        asyncio.get_running_loop().call_later(DRAIN_LIMIT, runtime.shutdown.set)
    return answer


async def restart(runtime: Runtime, request: Request, body: None) -> Any:
    """Restart now a server draining before its restart without the debugger (the balancer took it out)."""
    debugger = _debugger(runtime)
    if not debugger.restart_requested:
        raise DebugError("this server is not waiting to restart: turn debugpy off first ({enabled: false})")
    asyncio.get_running_loop().call_later(RESTART_AFTER, runtime.shutdown.set)
    return debugger.info()


async def set_pycharm(runtime: Runtime, request: Request, body: PycharmBody) -> Any:
    """``{"host": H, "port": P}`` connects to PyCharm's debug server; ``{"connect": false}`` disconnects."""
    debugger = _debugger(runtime)
    if not body.connect:
        answer = _own(runtime, await anyio.to_thread.run_sync(debugger.disable))
    else:
        assert body.port is not None  # the model requires a port to connect
        answer = _own(runtime, await anyio.to_thread.run_sync(debugger.connect_pycharm, body.host, body.port))
    forwarded = body.model_dump(mode="json", exclude_none=True)
    return _together(answer, await _siblings(runtime, request, "POST", "/debug/pycharm", forwarded))


_DEBUG_ERRORS = (409, 413)
OPERATIONS = [
    Operation(
        "GET",
        "/debug",
        debug_info,
        "This server's debugging: its attach point (server, pid, host, port, remote_root)",
        DebugAnswer,
    ),
    Operation(
        "POST",
        "/debug",
        set_debug,
        "Listen with debugpy ({enabled: true}), or stop debugging ({enabled: false}: a server that listened "
        "drains (its ping answers 503), then restarts in place without debugpy)",
        DebugAnswer,
        body=DebugBody,
        errors=_DEBUG_ERRORS,
    ),
    Operation(
        "POST",
        "/debug/restart",
        restart,
        "Restart now a server that drains before restarting without debugpy (once the balancer took it out)",
        DebugAnswer,
        errors=(409,),
    ),
    Operation(
        "POST",
        "/debug/pycharm",
        set_pycharm,
        "Connect to PyCharm's debug server ({host, port}), or disconnect ({connect: false})",
        DebugAnswer,
        body=PycharmBody,
        errors=_DEBUG_ERRORS,
    ),
]
