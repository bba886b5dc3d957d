"""Cluster life cycle: ``quickstart create``, ``start``, ``stop``, ``status``, ``migrate``, ``server run``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..channels.security import new_token, token_digest
from ..client import ping
from ..config import CONFIG_FILE, ServerSettings, Settings, load_settings, render_config
from ..core.errors import ConfigError
from ..files import owner_only
from ..settings import MAX_WORKERS
from ..supervisor import worker_file
from . import _dashboards as dashboards
from . import _haproxy as lb
from . import _schedulers as schedulers
from ._process import CliError, age, alive, describe, pid_running, port_free, port_taken, probe, stop_one, tail

STARTING = 5.0
"""Seconds a server process may take after it starts before it answers ping; an older one that does not is stuck."""


async def _prepare_odb(settings: Settings, token: str | None = None) -> None:
    from ..odb import OdbRepository, connect, migrate

    engine = connect(settings.odb_url)
    try:
        await migrate(engine)
        repository = OdbRepository(engine, settings.cluster_name)
        await repository.ensure_cluster()
        if token is not None:
            await repository.add_token("admin", token_digest(token))
    finally:
        await engine.dispose()


def quickstart_create(
    directory: Path,
    port: int,
    odb: str | None,
    name: str | None,
    servers: int = 2,
    redis: str | None = None,
    load_balancer: bool | None = None,
    dashboard: bool = False,
    workers: int | str = 1,
) -> dict[str, Any]:
    """A whole local cluster in ``directory``: the load balancer on ``port`` (when HAProxy is installed, or
    ``load_balancer`` says so), servers on the ports after it (each of ``workers`` processes), the ODB, the admin
    token, ``pickup/``; with ``dashboard``, a dashboard on the port before it (or the next free one) and its first
    user."""
    if servers < 1:
        raise CliError("--servers must be at least 1")
    directory = directory.resolve()
    if (directory / CONFIG_FILE).exists():
        raise CliError(f"{directory} is already a cluster: start it with 'splice start {directory}'")
    if directory.exists() and any(directory.iterdir()):
        raise CliError(f"{directory} exists and is not empty; pick a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    owner_only(directory)  # an empty directory made beforehand keeps its mode otherwise
    cluster_name = name or directory.name
    if load_balancer is None:
        load_balancer = lb.find_haproxy() is not None
    members = [(f"server{i}", "127.0.0.1", port + i) for i in range(1, servers + 1)]
    text = render_config(
        cluster_name,
        odb or "sqlite+aiosqlite:///odb.sqlite",
        members,
        redis=redis,
        pickup=["pickup"],
        load_balancer=("127.0.0.1", port) if load_balancer else None,
        schedulers=["scheduler1"],
    )
    (directory / CONFIG_FILE).write_text(with_workers(text, workers), encoding="utf-8")
    (directory / "pickup").mkdir()
    settings = load_settings(directory)
    for server in settings.servers:
        settings.deployed_dir(server.name).mkdir(parents=True)
        (settings.server_dir(server.name) / "logs").mkdir()
    for scheduler in settings.scheduler.names:
        (settings.server_dir(scheduler) / "logs").mkdir(parents=True)
    if settings.load_balancer is not None:
        lb.write_config(settings)
    token = new_token()
    fd = os.open(settings.token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    asyncio.run(_prepare_odb(settings, token))
    made = dashboards.create_in_cluster(settings, first_user=True) if dashboard else None
    return {
        "directory": str(directory),
        "cluster": cluster_name,
        "servers": [s.url for s in settings.servers],
        "load_balancer": settings.load_balancer.url if settings.load_balancer else None,
        "pickup": [str(p) for p in settings.pickup_dirs],
        "schedulers": list(settings.scheduler.names),
        "dashboard": made,
    }


def with_workers(text: str, workers: int | str) -> str:
    """``text`` of a new ``cluster.toml`` with ``workers = N`` in each ``[[servers]]`` entry (after its port);
    unchanged for 1 (the default)."""
    if workers == 1:
        return text
    value = '"auto"' if workers == "auto" else str(int(workers))
    head, mark, servers = text.partition("[[servers]]")
    return head + mark + re.sub(r"^(port = [0-9]+)$", rf"\1\nworkers = {value}", servers, flags=re.MULTILINE)


def workers_arg(value: str) -> int | str:
    """``--workers``: a whole number from 1 to ``MAX_WORKERS``, or ``auto``."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_WORKERS} or auto, got {value!r}")
    return number


def migrate(directory: Path) -> None:
    asyncio.run(_prepare_odb(load_settings(directory, os.environ)))


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.server_dir(name) / "server.pid"


def running_pid(settings: Settings, name: str) -> int | None:
    return pid_running(_pid_file(settings, name), "splice.server.cli", name)


def start(directory: Path, timeout: float) -> list[dict[str, Any]]:
    if dashboards.is_dashboard_dir(directory):
        return [dashboards.start(directory, timeout)]
    settings = load_settings(directory, os.environ)
    launched: dict[str, subprocess.Popen[bytes] | None] = {}
    began = time.monotonic()
    for server in settings.servers:
        pid = running_pid(settings, server.name)
        if pid is not None and _answers(settings, server, pid):
            continue
        if ping(server.url, 0.3) is not None or not port_free(server.host, server.port):
            raise CliError(port_taken(server.name, server.host, server.port, settings.directory))
        logs = settings.server_dir(server.name) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "console.log", "ab") as console:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "splice.server.cli",
                    "server",
                    "run",
                    str(settings.directory),
                    "--server",
                    server.name,
                ],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=settings.server_dir(server.name),
                start_new_session=True,
            )
        _pid_file(settings, server.name).write_text(f"{process.pid}\n")
        launched[server.name] = process
    # The schedulers and the dashboard need only the ODB to start: they start beside the servers, not after them.
    scheduling = schedulers.launch(settings)
    dashboard_launched = dashboards.launch_if_configured(settings)
    results = []
    for server in settings.servers:
        waiting = launched.get(server.name)
        if server.workers > 1:
            results.append(_wait_for_workers(settings, server, waiting, began, timeout))
            continue
        while True:
            answer = probe(server.url, 0.5)  # a saturated or draining server answers 503: it runs
            if answer is not None and answer[1].get("server") == server.name:
                break
            if waiting is not None and waiting.poll() is not None:
                _pid_file(settings, server.name).unlink(missing_ok=True)
                raise CliError(f"{server.name} exited with status {waiting.returncode}:\n{tail(settings, server.name)}")
            if time.monotonic() - began > timeout:
                late = f"{server.name} did not answer {server.url}/splice/ping within {timeout:g} s"
                raise CliError(f"{late}:\n{tail(settings, server.name)}")
            time.sleep(0.005)
        results.append(
            {
                "name": server.name,
                "url": server.url,
                "pid": running_pid(settings, server.name),
                "started": waiting is not None,
            }
        )
    balancer = lb.start_if_configured(settings, max(timeout - (time.monotonic() - began), 5.0))
    results += schedulers.wait(settings, scheduling, max(timeout - (time.monotonic() - began), 5.0))
    results += [] if balancer is None else [balancer]
    if dashboard_launched is None:
        return results
    return [*results, dashboards.wait(dashboard_launched, max(timeout - (time.monotonic() - began), 10.0))]


def _wait_for_workers(
    settings: Settings, server: ServerSettings, waiting: subprocess.Popen[bytes] | None, began: float, timeout: float
) -> dict[str, Any]:
    """Once every worker of ``server`` answers at its own URL (from its ``worker.json``): what ``start`` says of it."""
    since = time.time() - (time.monotonic() - began) - 1.0 if waiting is not None else 0.0
    while True:
        workers = [_worker_state(settings, server, k, since) for k in range(1, server.workers + 1)]
        if all(w["healthy"] for w in workers):
            break
        if waiting is not None and waiting.poll() is not None:
            _pid_file(settings, server.name).unlink(missing_ok=True)
            raise CliError(f"{server.name} exited with status {waiting.returncode}:\n{tail(settings, server.name)}")
        if time.monotonic() - began > timeout:
            late = ", ".join(f"worker {w['worker']}" for w in workers if not w["healthy"])
            where = settings.server_dir(server.name) / "workers"
            raise CliError(f"{server.name}: {late} did not answer within {timeout:g} s (logs in {where}/<K>/logs)")
        time.sleep(0.005)
    pid = running_pid(settings, server.name)
    return {"name": server.name, "url": server.url, "pid": pid, "started": waiting is not None, "workers": workers}


def _worker_state(settings: Settings, server: ServerSettings, worker: int, since: float = 0.0) -> dict[str, Any]:
    """Worker ``worker`` of ``server`` as its ``worker.json`` says (written after ``since``, a time), and whether it
    answers ping there as that worker."""
    state: dict[str, Any] = {"worker": worker, "member": f"{server.name}.w{worker}", "pid": None, "url": None}
    try:
        said = json.loads(worker_file(settings, server, worker).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        said = None
    if isinstance(said, dict) and float(said.get("ready_at") or 0) >= since:
        pid = int(said.get("pid") or 0)
        if pid > 0 and alive(pid):
            state.update(pid=pid, url=said.get("url"))
    answer = ping(state["url"], 1.0) if state["url"] else None
    state["healthy"] = answer is not None and answer.get("server") == server.name and answer.get("worker") == worker
    return state


def _answers(settings: Settings, server: ServerSettings, pid: int) -> bool:
    """Whether the running process ``pid`` of ``server`` answers ping (``False``: it ended meanwhile). One that still
    does not answer once it is ``STARTING`` seconds old is an old process stuck (or stopped): ``CliError`` names it
    and says what to do, instead of waiting for it."""
    while True:
        answer = probe(server.url, 1.0)
        if answer is not None and answer[1].get("server") == server.name:
            return True
        if not alive(pid):
            _pid_file(settings, server.name).unlink(missing_ok=True)
            return False
        if (age(pid) or STARTING) >= STARTING:
            break
        time.sleep(0.1)
    directory = settings.directory
    raise CliError(
        f"{server.name} does not answer {server.url}/splice/ping, but its process still runs: {describe(pid)}. "
        f"It is stuck (a service that blocks, a hung shutdown) or stopped. End it with 'kill {pid}' (if it does "
        f"not end, 'kill -9 {pid}') or 'splice stop {directory}', then run 'splice start {directory}' again"
    )


def stop(directory: Path, timeout: float = 15.0) -> list[dict[str, Any]]:
    if dashboards.is_dashboard_dir(directory):
        return [dashboards.stop(directory, timeout)]
    settings = load_settings(directory, os.environ)
    dashboard = dashboards.stop_if_configured(settings, timeout)  # first: nobody acts on a stopping cluster
    results = [] if dashboard is None else [dashboard]
    balancer = lb.stop_if_configured(settings, timeout)  # then: no request reaches a stopping server
    results += [] if balancer is None else [balancer]
    results += schedulers.stop(settings, timeout)  # then: no run is sent to a stopping server
    for server in settings.servers:
        pid = running_pid(settings, server.name)
        results.append(stop_one(server.name, pid, _pid_file(settings, server.name), timeout))
    return results


def status(directory: Path) -> dict[str, Any]:
    if dashboards.is_dashboard_dir(directory):
        dashboard = dashboards.status(directory)
        name = dashboards.load(directory).cluster
        alone: dict[str, Any] = {"servers": [], "load_balancer": None, "schedulers": [], "dashboard": dashboard}
        return {"cluster": name, "directory": str(directory.resolve()), **alone}
    settings = load_settings(directory, os.environ)
    servers = []
    for server in settings.servers:
        answer = ping(server.url, 1.0)
        entry: dict[str, Any] = {
            "name": server.name,
            "url": server.url,
            "pid": running_pid(settings, server.name),
            "healthy": answer is not None and answer.get("server") == server.name,
        }
        if server.workers > 1:  # the supervisor's pid, and each worker: healthy only when all of them answer
            entry["workers"] = [_worker_state(settings, server, k) for k in range(1, server.workers + 1)]
            entry["healthy"] = entry["healthy"] and all(w["healthy"] for w in entry["workers"])
        servers.append(entry)
    return {
        "cluster": settings.cluster_name,
        "directory": str(settings.directory),
        "servers": servers,
        "load_balancer": lb.status(settings),
        "schedulers": schedulers.status(settings),
        "dashboard": dashboards.status_if_configured(settings),
    }


def read_token(settings: Settings) -> str:
    try:
        return settings.token_file.read_text().strip()
    except FileNotFoundError:
        raise ConfigError(str(settings.token_file), "not found: the admin token file is missing") from None


__all__ = [
    "CliError",
    "migrate",
    "quickstart_create",
    "read_token",
    "start",
    "status",
    "stop",
    "with_workers",
    "workers_arg",
]
