"""Admin API for debugging a server: ``GET|POST /splice/admin/debug``, ``POST /splice/admin/debug/restart`` and
``POST /splice/admin/debug/pycharm``.

Each call acts on the server that answers it; ``splice debug ...`` calls every server of the cluster.

Turning debugpy off restarts the server (debugpy cannot stop listening). So that no request fails meanwhile, the
server first drains: ``/splice/ping`` answers 503 and the balancer's health checks take it out of rotation while
it keeps answering what still comes. ``POST /debug/restart`` then restarts it at once (what ``splice debug
disable`` calls once HAProxy shows the server out); a client that does not call it gets the restart after
``DRAIN_LIMIT`` seconds anyway.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request

from ..debug import DebugError
from .operations import Operation
from .schemas.runtime import DebugAnswer, DebugBody, PycharmBody

if TYPE_CHECKING:
    from ..debug import Debugger
    from ..runtime import Runtime

RESTART_AFTER = 0.2
"""Seconds between answering ``POST /debug/restart`` and the restart, so the answer gets out."""
DRAIN_LIMIT = 10.0
"""Seconds a server drains before it restarts without the debugger when nobody asks it to restart sooner: ample
for HAProxy's checks (every 500 ms, out after 2 failed) or a cloud balancer's to take it out of rotation."""


def _debugger(runtime: Runtime) -> Debugger:
    return runtime.debugger


async def debug_info(runtime: Runtime, request: Request, body: None) -> Any:
    return _debugger(runtime).info()


async def set_debug(runtime: Runtime, request: Request, body: DebugBody) -> Any:
    """``{"enabled": true[, "host": "127.0.0.1"]}`` listens with debugpy; ``{"enabled": false}`` stops debugging."""
    debugger = _debugger(runtime)
    if body.enabled:
        return await anyio.to_thread.run_sync(debugger.enable, body.host)
    answer = await anyio.to_thread.run_sync(debugger.disable)
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
        return await anyio.to_thread.run_sync(debugger.disable)
    assert body.port is not None  # the model requires a port to connect
    return await anyio.to_thread.run_sync(debugger.connect_pycharm, body.host, body.port)


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
