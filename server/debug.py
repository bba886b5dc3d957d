"""Debugging a running server: a debugpy attach point in the process, or a connection out to PyCharm's debug server.

Off unless ``[debug] enabled = true`` or ``POST /splice/admin/debug`` turns it on at run time. Deployed modules
run from real files under ``<server dir>/work/deployed``, so an editor maps its project root onto that one
directory (``remote_root``) and a breakpoint on the user's own file binds, also in code deployed a second ago.

Two limits of the debuggers shape what "off" means:

- debugpy cannot stop listening once it started (debugpy issue #870), so turning an attach point off
  restarts the server process in place (same pid: ``os.execv`` once the requests under way are answered);
  it drains first (``/splice/ping`` answers 503 until the balancer took it out: ``http/admin_debug.py``) and
  comes back without the debugger, as ``cluster.toml`` says, in about half a second. For the same reason an
  attach point cannot move to another address: enabling it again with another host is refused.
- debugpy and ``pydevd_pycharm`` are two copies of one debugger (pydevd) and cannot trace one process
  together: a server does one or the other until it is restarted.

A paused breakpoint stops the thread it is in. A plain ``def handle`` runs in a worker thread: only its own
request waits. While a debugger traces the process (debugpy listening, or PyCharm's debugger connected), an
``async def handle`` runs on an event loop of its own in a thread of the same pool (``Invoker.own_loop``), so a
breakpoint paused there also holds up only its own request: pings and other calls go on, and the balancer keeps
the server. What it awaits of the server's loop (``self.ainvoke``, ``self.out``, ``self.cache``...) is run there
for it. Its one cost: while debugging, ``[calls] threads`` bounds ``async def`` calls too (beyond it and
``[calls] queue``, 503), and a nested call of an async service takes a thread of its own.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import LOOPBACK, DebugSettings, ServerSettings
from .core.errors import SpliceError
from .core.invoker import Invoker

logger = logging.getLogger(__name__)


class DebugError(SpliceError):
    """Debugging cannot be turned on as asked."""

    code = "debug_refused"


def attach_point(debug: DebugSettings, server: ServerSettings, remote_root: Path) -> dict[str, Any]:
    """Where an editor attaches to ``server`` (as configured), and the path mapping it needs.

    A worker of a server of several (``[[servers]] workers``) has an attach point of its own
    (``DebugSettings.port_of``), said by ``worker`` (1 to N) and ``member`` (``server1.w2``)."""
    point: dict[str, Any] = {
        "server": server.name,
        "process": "server",
        "host": debug.host,
        "port": debug.port_of(server),
        "remote_root": str(remote_root),
    }
    if server.workers > 1:
        point["worker"] = server.worker
        point["member"] = server.member
    return point


def _check_free(host: str, port: int) -> None:
    """Refuse a port another process holds, as debugpy's own listener would find it (``SO_REUSEADDR``)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise DebugError(
                f"cannot listen on {host}:{port}: {exc.strerror} (another process holds it: [debug] port in "
                "cluster.toml sets where the attach points begin)"
            ) from None


@dataclass
class Debugger:
    """The debugging state of one server process."""

    settings: DebugSettings
    server: ServerSettings
    remote_root: Path
    listening: tuple[str, int] | None = None
    pycharm: dict[str, Any] | None = None
    ide_root: Path | None = None
    """The deployed directory PyCharm maps the project onto (the first server's). PyCharm sends a breakpoint with
    one path whatever the number of mappings, so every other server translates that directory into its own."""
    restart_requested: bool = field(default=False)
    """Set by ``disable`` when debugpy listened: the server restarts in place once it stopped serving."""

    def info(self) -> dict[str, Any]:
        point = attach_point(self.settings, self.server, self.remote_root)
        point["pid"] = os.getpid()
        if self.listening is not None:
            point["host"], point["port"] = self.listening
        return {
            "server": self.server.name,
            "enabled": self.listening is not None,
            "attach_points": [point] if self.listening is not None else [],
            "configured": point,
            "pycharm": self.pycharm,
            "restarting": self.restart_requested,
        }

    def enable(self, host: str | None = None) -> dict[str, Any]:
        """Listen with debugpy (idempotent); blocking for a few milliseconds, so call it off the event loop."""
        asked = host
        host = host or self.settings.host
        if host not in LOOPBACK and not self.settings.allow_remote:
            remote = "unless cluster.toml says [debug] allow_remote = true"
            raise DebugError(f"refusing to listen on {host!r}: only the loopback, {remote}")
        if self.listening is not None:
            if asked is not None and asked != self.listening[0]:
                where = "{}:{}".format(*self.listening)
                raise DebugError(
                    f"debugpy already listens on {where} and cannot move to {asked}: run 'splice debug disable' "
                    f"(the server restarts without it), then 'splice debug enable --host {asked}'"
                )
            return self.info()
        if self.pycharm is not None:
            raise DebugError("this server is connected to PyCharm's debug server; disconnect it first")
        if self.restart_requested:
            raise DebugError("this server is restarting without the debugger; enable it again once it is back")
        import debugpy

        port = self.settings.port_of(self.server)
        _check_free(host, port)  # debugpy would wait for ever on a taken port (its listener thread dies)
        debugpy.configure(subProcess=False)
        try:
            endpoint = debugpy.listen((host, port), in_process_debug_adapter=True)
        except (RuntimeError, OSError) as exc:
            raise DebugError(f"cannot listen on {host}:{port}: {exc}") from None
        self.listening = (str(endpoint[0]), int(endpoint[1]))
        Invoker.own_loop = True  # for good: debugpy cannot stop listening
        logger.warning("debugpy listens on %s:%s: anyone who can connect there can run code here", *self.listening)
        return self.info()

    def disable(self) -> dict[str, Any]:
        """Stop debugging: a PyCharm connection ends now; a debugpy listener only with a restart of the process."""
        if self.pycharm is not None:
            import pydevd_pycharm

            pydevd_pycharm.stoptrace()
            Invoker.own_loop = False
            logger.info("disconnected from PyCharm's debug server at %s:%s", self.pycharm["host"], self.pycharm["port"])
            self.pycharm = None
        if self.listening is not None:
            if self.settings.enabled:
                raise DebugError(
                    "cluster.toml says [debug] enabled = true, so this server would come back listening: set it to "
                    "false and restart the server"
                )
            self.restart_requested = True
            logger.info("debugpy cannot stop listening: restarting this server without it")
        return self.info()

    def connect_pycharm(self, host: str, port: int) -> dict[str, Any]:
        """Connect this process to PyCharm's debug server (the IDE listens); blocking, so call it off the loop."""
        if self.listening is not None:
            raise DebugError("debugpy listens in this server; PyCharm's debugger cannot trace it too until it restarts")
        try:
            import pydevd_pycharm
        except ImportError:
            raise DebugError(
                "pydevd-pycharm is not installed: pip install 'pydevd-pycharm~=<your PyCharm build>' "
                "(Help > About shows the build) in the servers' environment"
            ) from None
        if self.pycharm is not None:
            pydevd_pycharm.stoptrace()
        if self.ide_root is not None and self.ide_root != self.remote_root:
            import pydevd_file_utils

            pydevd_file_utils.setup_client_server_paths([(str(self.ide_root), str(self.remote_root))])
        try:
            pydevd_pycharm.settrace(
                host,
                port=port,
                suspend=False,
                stdout_to_server=False,
                stderr_to_server=False,
                patch_multiprocessing=False,
            )
        except (OSError, SystemExit) as exc:
            raise DebugError(f"cannot reach PyCharm's debug server at {host}:{port}: {exc}") from None
        self.pycharm = {"host": host, "port": port, "remote_root": str(self.remote_root)}
        Invoker.own_loop = True
        logger.info("connected to PyCharm's debug server at %s:%s", host, port)
        return self.info()


__all__ = ["DebugError", "Debugger", "attach_point"]
