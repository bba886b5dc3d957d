"""``splice debug enable|disable|info|pycharm DIR``: debugging on every server of a cluster, through the admin API.

Each server is asked directly (not through the load balancer), so every one of them answers for itself.
``disable`` restarts the servers that listened one at a time, each drained from the balancer first
(``_rolling.py``), so the others answer meanwhile. A server of several workers answers for all of them (each
worker has an attach point of its own: one line each); ``disable`` restarts its workers one at a time, each at
its own URL, while the others serve its port.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from ..client import AdminClient, ClientError, Unreachable
from ..config import load_settings
from ._process import CliError
from ._rolling import balancer_of, restart_drained, restart_workers, worker_label
from .cluster import read_token

DRAIN = 2.0
"""Seconds a server drains before its restart when no HAProxy of the cluster says when it is out of rotation."""


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    debug = sub.add_parser("debug", help="debugpy attach points, or PyCharm's debug server").add_subparsers(
        dest="action", required=True
    )
    enable = debug.add_parser("enable", help="every server listens with debugpy (127.0.0.1 unless configured)")
    cluster_arg(enable, positional=True)
    enable.add_argument("--host", help="listen on this address ([debug] allow_remote must allow it)")
    disable = debug.add_parser(
        "disable", help="stop debugging (servers that listened restart without debugpy, one at a time, drained first)"
    )
    cluster_arg(disable, positional=True)
    disable.add_argument(
        "--drain",
        type=float,
        default=DRAIN,
        metavar="SECONDS",
        help="without an HAProxy of this cluster, how long a server drains before it restarts: the time an external "
        f"balancer's health checks need to take it out of rotation (default {DRAIN:g})",
    )
    info = debug.add_parser("info", help="every attach point: server, pid, host, port, remote root")
    cluster_arg(info, positional=True)
    info.add_argument("--json", action="store_true")
    pycharm = debug.add_parser("pycharm", help="connect every server to PyCharm's debug server (the IDE listens)")
    cluster_arg(pycharm, positional=True)
    pycharm.add_argument("--host", default="127.0.0.1", help="where PyCharm's debug server listens (default 127.0.0.1)")
    pycharm.add_argument("--port", type=int, help="its port (the run configuration's; required unless --disconnect)")
    pycharm.add_argument("--disconnect", action="store_true")


def run(args: argparse.Namespace) -> int | None:
    if args.command != "debug":
        return None
    settings = load_settings(args.directory, os.environ)
    token = read_token(settings)
    if args.action == "pycharm" and not args.disconnect and args.port is None:
        raise CliError("give the port PyCharm's debug server listens on: --port P", 2)
    answers: list[dict[str, Any]] = []
    failed = 0
    balancer = balancer_of(settings) if args.action == "disable" else None
    for server in settings.servers:
        client = AdminClient(server.url, token)
        try:
            if args.action == "disable" and server.workers > 1:
                restart_workers(client, server, token, lambda line: print(line, flush=True))
                continue
            answers.append(client.call(*_request(args)))
            if args.action == "disable" and answers[-1].get("restarting"):
                # One at a time, each serving again before the next drains: the others answer meanwhile.
                print(_line(args.action, answers.pop()), flush=True)
                polling = AdminClient(server.url, token, timeout=2.0)
                restart_drained(polling, server, balancer, args.drain, lambda line: print(line, flush=True))
        except (ClientError, Unreachable) as exc:
            failed += 1
            answers.append({"server": server.name, "error": str(exc)})
    if args.action == "info" and args.json:
        points = [point for answer in answers for point in answer.get("attach_points", [])]
        print(json.dumps({"attach_points": points, "servers": answers}, indent=2))
    else:
        for answer in answers:
            print(_line(args.action, answer), file=sys.stderr if answer.get("error") else sys.stdout)
    return 1 if failed else 0


def _request(args: argparse.Namespace) -> tuple[str, str, Any]:
    if args.action == "enable":
        return "POST", "/splice/admin/debug", {"enabled": True, **({"host": args.host} if args.host else {})}
    if args.action == "disable":
        return "POST", "/splice/admin/debug", {"enabled": False}
    if args.action == "pycharm":
        body = {"connect": False} if args.disconnect else {"host": args.host, "port": args.port}
        return "POST", "/splice/admin/debug/pycharm", body
    return "GET", "/splice/admin/debug", None


def _line(action: str, answer: dict[str, Any]) -> str:
    server = answer.get("server", "?")
    if answer.get("error"):
        return f"{server}: {answer['error']}"
    if answer.get("restarting"):
        return (
            f"{server}: debugging off; restarting without debugpy (it cannot stop listening otherwise) once drained "
            "from the balancer"
        )
    pycharm = answer.get("pycharm")
    if pycharm:
        return f"{server}: connected to PyCharm's debug server at {pycharm['host']}:{pycharm['port']}"
    points = answer.get("attach_points") or []
    if points:
        lines = []
        for point in points:
            label = worker_label(point["member"]) if point.get("member") else server
            where = f"{point['host']}:{point['port']} (pid {point['pid']})"
            lines.append(f"{label}: debugpy on {where}, remote root {point['remote_root']}")
        return "\n".join(lines)
    configured = answer.get("configured", {})
    return f"{server}: debugging off (would listen on {configured.get('host')}:{configured.get('port')})"


__all__ = ["register", "run"]
