"""``splice create load-balancer|server DIR`` and ``splice remove server DIR``: change a cluster's parts.

Each edits ``DIR/cluster.toml`` in place (only the lines concerned), regenerates the HAProxy
configuration and, when HAProxy runs, reloads it without dropping a request.

The ``create`` and ``remove`` command groups belong to no module: ``create_subparsers(sub)`` and
``remove_subparsers(sub)`` make each once per parser and hand it to whoever asks, so another command
module adds ``splice create odb`` with ``create_subparsers(sub).add_parser("odb")``. The chosen
subcommand is ``args.what``.

``splice create server DIR`` is registered here for both of its uses: with ``DIR/cluster.toml`` present it
adds a server to that cluster directory; with a new ``DIR`` (and ``--odb``, ``--cluster``) it makes a
server directory of a distributed cluster (``distributed.create_server_directory``).
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import re
import signal
import socket
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, LoadBalancerSettings, ServerSettings, Settings, load_settings, workers_of
from . import _config_edit as config_edit
from . import _haproxy as lb
from .cluster import CliError, _pid_file, running_pid, workers_arg

_GROUPS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()
"""The command groups made so far, per parent subparsers object (weakly: parsers come and go)."""


def _group(sub: Any, name: str, text: str) -> Any:
    groups = _GROUPS.setdefault(sub, {})
    if name not in groups:
        parser = sub.add_parser(name, help=text)
        groups[name] = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    return groups[name]


def create_subparsers(sub: Any) -> Any:
    """The subparsers of ``splice create``, made on first use; add a subcommand with ``.add_parser(name)``."""
    return _group(sub, "create", "add a part to a cluster directory")


def remove_subparsers(sub: Any) -> Any:
    """The subparsers of ``splice remove``, made on first use."""
    return _group(sub, "remove", "take a part out of a cluster directory")


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    balancer = create_subparsers(sub).add_parser(
        "load-balancer", help="an HAProxy in front of the servers: [load_balancer] in cluster.toml, haproxy.cfg"
    )
    cluster_arg(balancer, positional=True)
    balancer.add_argument("--host", help="the address HAProxy listens on (default: as before, else 127.0.0.1)")
    balancer.add_argument("--port", type=int, help="default: as before, else the port below the first server's")
    server = create_subparsers(sub).add_parser(
        "server", help="add a server to a cluster directory, or make a new server directory (--odb, --cluster)"
    )
    # --cluster names the cluster of a new server directory here: the directory is DIR or $SPLICE_CLUSTER.
    cluster_arg(server, positional=True, option=False)
    server.add_argument("--name", help="default: server<N>, the next free number")
    server.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    server.add_argument("--port", type=int, help="default: the port after the highest one the cluster uses")
    server.add_argument("--odb", help="a new server directory: the cluster's ODB URL")
    server.add_argument("--cluster", dest="cluster_name", metavar="NAME", help="a new server directory: the cluster")
    server.add_argument("--redis", help="a new server directory: the Redis URL of the cluster bus")
    server.add_argument(
        "--workers",
        type=workers_arg,
        default=1,
        metavar="N",
        help="worker processes sharing its port (a number, or auto: one per CPU; default 1)",
    )
    remove = remove_subparsers(sub).add_parser("server", help="remove a server (stopping it if it runs)")
    cluster_arg(remove, positional=True)
    remove.add_argument("--name", required=True)
    remove.add_argument("--timeout", type=float, default=15.0)


def run(args: argparse.Namespace) -> int | None:
    what = (args.command, getattr(args, "what", None))
    if what == ("create", "load-balancer"):
        return _create_load_balancer(args.directory, args.host, args.port)
    if what == ("create", "server"):
        if not (args.directory / CONFIG_FILE).exists():
            return _create_server_directory(args)
        if args.odb or args.cluster_name or args.redis:
            raise CliError(f"{args.directory} is a cluster directory: its {CONFIG_FILE} names the ODB and cluster", 2)
        return _create_server(args.directory, args.name, args.host, args.port, args.workers)
    if what == ("remove", "server"):
        return _remove_server(args.directory, args.name, args.timeout)
    return None


def _write_cluster_file(settings: Settings, text: str) -> None:
    path = settings.directory / CONFIG_FILE
    partial = path.with_name(CONFIG_FILE + ".new")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _used_ports(settings: Settings) -> dict[int, str]:
    used = {server.port: server.name for server in settings.servers}
    if settings.load_balancer is not None:
        used[settings.load_balancer.port] = "the load balancer"
    return used


def _check_port(port: int, used: dict[int, str]) -> None:
    if not 0 < port < 65536:
        raise CliError(f"--port must be between 1 and 65535, got {port}", 2)
    if port in used:
        raise CliError(f"port {port} is {used[port]}'s: pick another with --port", 2)


def _apply(settings: Settings, text: str) -> str:
    """Check and write the HAProxy configuration of the new ``settings``, then ``cluster.toml``; reload HAProxy."""
    if settings.load_balancer is not None:
        lb.write_config(settings)
    _write_cluster_file(settings, text)
    if settings.load_balancer is None:
        return ""
    if lb.reload(settings):
        return f"load balancer reloaded: {len(settings.servers)} servers behind {settings.load_balancer.url}"
    return f"load balancer configuration: {lb.config_file(settings.directory)}"


def _create_load_balancer(directory: Path, host: str | None, port: int | None) -> int:
    settings = load_settings(directory, os.environ)
    current = settings.load_balancer
    used = {p: name for p, name in _used_ports(settings).items() if name != "the load balancer"}
    if port is None:
        port = current.port if current else min(s.port for s in settings.servers) - 1
    _check_port(port, used)
    balancer = LoadBalancerSettings(host or (current.host if current else "127.0.0.1"), port)
    text = (settings.directory / CONFIG_FILE).read_text(encoding="utf-8")
    text = config_edit.set_table(text, "load_balancer", {"host": balancer.host, "port": balancer.port})
    note = _apply(dataclasses.replace(settings, load_balancer=balancer), text)
    print(f"load balancer: {balancer.url} ({len(settings.servers)} servers, health check {lb.HEALTH_CHECK})")
    print(note)
    if lb.find_haproxy() is None:
        print("haproxy is not installed (apt-get install haproxy): 'splice start' will run the servers without it")
    elif not lb.running_pids(settings.directory):
        print(f"start it with: splice start {directory}")
    return 0


def _next_name(settings: Settings) -> str:
    numbers = [int(m.group(1)) for s in settings.servers if (m := re.fullmatch(r"server(\d+)", s.name))]
    return f"server{max(numbers, default=len(settings.servers)) + 1}"


def _free_now(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` now (``True`` when that cannot be told from this host)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


def _create_server(directory: Path, name: str | None, host: str, port: int | None, workers: int | str = 1) -> int:
    settings = load_settings(directory, os.environ)
    name = name or _next_name(settings)
    if any(s.name == name for s in settings.servers):
        raise CliError(f"{settings.directory} already has a server named '{name}'", 2)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", name) or name == lb.LB_DIR:
        raise CliError(f"'{name}' cannot name a server: use letters, digits, '-', '_', '.' or ':'", 2)
    home = settings.server_dir(name)
    if home.exists() and not (home / "work").is_dir():
        raise CliError(f"{home} exists and is not a server's directory: pick another --name", 2)
    used = _used_ports(settings)
    if port is None:
        port = max(used) + 1
        while not _free_now(host, port) and port < max(used) + 100:
            port += 1
    _check_port(port, used)
    config_text = (settings.directory / CONFIG_FILE).read_text(encoding="utf-8")
    text = config_edit.add_server(config_text, name, host, port, workers)
    added = ServerSettings(name, host, port, len(settings.servers), workers=workers_of(workers, CONFIG_FILE, name))
    new = dataclasses.replace(settings, servers=(*settings.servers, added))
    new.deployed_dir(name).mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    note = _apply(new, text)
    print(f"added {name}: {added.url} (directory {home})")
    if note:
        print(note)
    print(f"start it with: splice start {directory}")
    return 0


def _create_server_directory(args: argparse.Namespace) -> int:
    from .distributed import create_server_directory

    if not (args.odb and args.cluster_name and args.port):
        raise CliError(
            f"{args.directory} is not a cluster directory: a new server directory needs --odb, --cluster, --port", 2
        )
    created = create_server_directory(
        args.directory,
        odb=args.odb,
        cluster=args.cluster_name,
        name=args.name or "server1",
        host=args.host,
        port=args.port,
        redis=args.redis,
        workers=args.workers,
    )
    print(f"created server {created['server']} of cluster '{created['cluster']}' in {created['directory']}")
    print(f"start it with: splice start {args.directory}")
    return 0


def _stop_server(settings: Settings, name: str, timeout: float) -> bool:
    pid = running_pid(settings, name)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running_pid(settings, name) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        if running_pid(settings, name) is not None:
            os.kill(pid, signal.SIGKILL)
    _pid_file(settings, name).unlink(missing_ok=True)
    return pid is not None


def _remove_server(directory: Path, name: str, timeout: float) -> int:
    settings = load_settings(directory, os.environ)
    settings.server(name)  # a ConfigError naming the known servers if there is none of that name
    if len(settings.servers) == 1:
        raise CliError(f"{name} is the last server of {settings.directory}: a cluster needs one", 2)
    text = config_edit.remove_server((settings.directory / CONFIG_FILE).read_text(encoding="utf-8"), name)
    new = dataclasses.replace(settings, servers=tuple(s for s in settings.servers if s.name != name))
    # HAProxy stops sending requests to the server before it stops: nothing in flight is lost.
    note = _apply(new, text)
    stopped = _stop_server(settings, name, timeout)
    print(f"removed {name}{' (stopped it)' if stopped else ''}; its directory {settings.server_dir(name)} is kept")
    if note:
        print(note)
    return 0


__all__ = ["create_subparsers", "register", "remove_subparsers", "run"]
