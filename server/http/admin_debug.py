"""Admin API for debugging a server: ``GET|POST /splice/admin/debug`` and ``POST /splice/admin/debug/pycharm``.

Each call acts on the server that answers it; ``splice debug ...`` calls every server of the cluster.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request

from .operations import Operation
from .schemas.runtime import DebugAnswer, DebugBody, PycharmBody

if TYPE_CHECKING:
    from ..debug import Debugger
    from ..runtime import Runtime

RESTART_AFTER = 0.2
"""Seconds between answering a request that turns debugpy off and the restart, so the answer gets out."""


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
    if debugger.restart_requested and runtime.shutdown is not None:
        asyncio.get_running_loop().call_later(RESTART_AFTER, runtime.shutdown.set)
    return answer


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
        "restarts in place without debugpy)",
        DebugAnswer,
        body=DebugBody,
        errors=_DEBUG_ERRORS,
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
