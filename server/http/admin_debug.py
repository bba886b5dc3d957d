"""Admin API for debugging a server: ``GET|POST /splice/admin/debug`` and ``POST /splice/admin/debug/pycharm``.

Each call acts on the server that answers it; ``splice debug ...`` calls every server of the cluster.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request

from ..core.errors import BadRequest

if TYPE_CHECKING:
    from ..debug import Debugger
    from ..runtime import Runtime

RESTART_AFTER = 0.2
"""Seconds between answering a request that turns debugpy off and the restart, so the answer gets out."""


def _debugger(runtime: Runtime) -> Debugger:
    return runtime.debugger


async def debug_info(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    return _debugger(runtime).info()


async def set_debug(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    """``{"enabled": true[, "host": "127.0.0.1"]}`` listens with debugpy; ``{"enabled": false}`` stops debugging."""
    debugger = _debugger(runtime)
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequest(f"field 'enabled' must be true or false, got {enabled!r}")
    host = body.get("host")
    if host is not None and not isinstance(host, str):
        raise BadRequest(f"field 'host' must be a string, got {host!r}")
    if enabled:
        return await anyio.to_thread.run_sync(debugger.enable, host)
    answer = await anyio.to_thread.run_sync(debugger.disable)
    if debugger.restart_requested and runtime.shutdown is not None:
        asyncio.get_running_loop().call_later(RESTART_AFTER, runtime.shutdown.set)
    return answer


async def set_pycharm(runtime: Runtime, request: Request, body: dict[str, Any]) -> Any:
    """``{"host": H, "port": P}`` connects to PyCharm's debug server; ``{"connect": false}`` disconnects."""
    debugger = _debugger(runtime)
    if body.get("connect", True) is False:
        return await anyio.to_thread.run_sync(debugger.disable)
    host, port = body.get("host", "127.0.0.1"), body.get("port")
    if not isinstance(host, str) or not host:
        raise BadRequest(f"field 'host' must be a host name or address, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise BadRequest(f"field 'port' must be the port PyCharm's debug server listens on, got {port!r}")
    return await anyio.to_thread.run_sync(debugger.connect_pycharm, host, port)


TABLE = [
    ("GET", "/debug", debug_info),
    ("POST", "/debug", set_debug),
    ("POST", "/debug/pycharm", set_pycharm),
]
