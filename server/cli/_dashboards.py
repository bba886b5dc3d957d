"""The dashboard of a cluster directory (or a dashboard directory alone), for ``splice create dashboard``,
``start``, ``stop`` and ``status``.

A dashboard runs as ``python -m splice.dashboard DIR`` where ``DIR`` holds its ``dashboard.toml``; its pid is
in ``DIR/dashboard.pid``, what it prints in ``DIR/logs/console.log`` (its own log: ``logs/dashboard.log``).
``start`` returns once ``GET <url>/healthz`` answers 200. ``splice.dashboard`` is imported only inside the
functions that need it: the server never depends on the dashboard.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CONFIG_FILE, TOKEN_FILE, Settings
from ._process import CliError, listening, pid_running, stop_one

if TYPE_CHECKING:
    from splice.dashboard import DashboardSettings

POLL = 0.01
"""Seconds between two ``/healthz`` probes of a starting dashboard (a refused connection costs ~0.1 ms)."""
DASHBOARD_FILE = "dashboard.toml"
"""``splice.dashboard.CONFIG_FILE``, spelled out here so that telling a dashboard directory needs no import."""
NAME = "dashboard"
PASSWORD_FILE = "initial-password"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def is_dashboard_dir(directory: Path) -> bool:
    """A dashboard directory of its own (``dashboard.toml``, no ``cluster.toml``)."""
    return (directory / DASHBOARD_FILE).is_file() and not (directory / CONFIG_FILE).exists()


def load(directory: Path) -> DashboardSettings:
    from splice.dashboard import load_dashboard_settings

    return load_dashboard_settings(directory, os.environ)


def dashboard_of(directory: Path) -> Path:
    """The dashboard directory meant by ``directory``: itself, or the dashboard of the cluster it holds."""
    if (directory / DASHBOARD_FILE).is_file():
        return directory.resolve()
    if not (directory / CONFIG_FILE).is_file():
        raise CliError(
            f"{directory} is neither a cluster directory ({CONFIG_FILE}) nor a dashboard's ({DASHBOARD_FILE})"
        )
    from ..config import load_settings

    settings = load_settings(directory, os.environ)
    if settings.dashboard_dir is None:
        raise CliError(
            f"the cluster in {settings.directory} has no dashboard: 'splice create dashboard --cluster {directory}'"
        )
    return settings.dashboard_dir


# -- creating ------------------------------------------------------------------------------------------------


def _free_now(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host if host != "localhost" else "127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(host: str, wanted: int, used: set[int]) -> int:
    """``wanted`` when nothing of the cluster has it and it is free now, else the next such port after it."""
    port = wanted
    while port in used or not _free_now(host, port):
        port += 1
        if port >= 65536 or port > wanted + 200:
            raise CliError(f"no free port from {wanted} on: give one with --port", 2)
    return port


def cluster_port(settings: Settings, host: str) -> int:
    """The load balancer's port - 1 (17009 for a quickstart's 17010) when free, else the next free one after
    the ports the cluster uses."""
    used = {s.port for s in settings.servers}
    balancer = settings.load_balancer.port if settings.load_balancer else min(used) - 1
    used.add(balancer)
    if balancer - 1 not in used and _free_now(host, balancer - 1):
        return balancer - 1
    return pick_port(host, max(used) + 1, used)


def write_config(directory: Path, cluster: str, host: str, port: int, admin: list[str], token_file: str) -> None:
    from splice.dashboard import render_dashboard_config

    if (directory / DASHBOARD_FILE).exists():
        raise CliError(f"{directory / DASHBOARD_FILE} exists already: that directory has a dashboard")
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    text = render_dashboard_config(cluster, host, port, admin, token_file)
    (directory / DASHBOARD_FILE).write_text(text, encoding="utf-8")


def write_secret(path: Path, text: str) -> None:
    """``text`` in a new file only its owner reads (mode 0600 from the start, never wider)."""
    partial = path.with_name(path.name + ".new")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    os.replace(partial, path)


def create_in_cluster(
    settings: Settings, *, name: str = NAME, host: str = "127.0.0.1", port: int | None = None, first_user: bool = False
) -> dict[str, Any]:
    """A dashboard in ``settings.directory / name`` for that cluster, recorded in ``cluster.toml``. With
    ``first_user``: a user ``admin`` with a random password written to ``initial-password`` (0600)."""
    if settings.dashboard_dir is not None:
        raise CliError(f"the cluster in {settings.directory} has a dashboard already: {settings.dashboard_dir}", 2)
    taken = {s.name for s in settings.servers} | set(settings.scheduler.names) | {"pickup", "load-balancer"}
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name) or name in taken:
        raise CliError(f"'{name}' cannot name the dashboard's directory here: pick another --name", 2)
    directory = settings.directory / name
    if directory.exists() and any(directory.iterdir()):
        raise CliError(f"{directory} exists and is not empty: pick another --name", 2)
    used = {s.port for s in settings.servers} | ({settings.load_balancer.port} if settings.load_balancer else set())
    if port is None:
        port = cluster_port(settings, host)
    elif port in used or not 0 < port < 65536:
        raise CliError(f"--port {port} is taken by the cluster or out of range: pick another", 2)
    admin = [settings.load_balancer.url] if settings.load_balancer else [s.url for s in settings.servers]
    path = settings.directory / CONFIG_FILE
    from . import _config_edit as config_edit  # tomlkit: only when a dashboard is added

    text = config_edit.set_table(path.read_text(encoding="utf-8"), "dashboard", {"dir": name})
    write_config(directory, settings.cluster_name, host, port, admin, f"../{TOKEN_FILE}")
    password_file = None
    if first_user:
        from splice.dashboard import Users

        password = secrets.token_urlsafe(12)
        Users(directory / "users.json").create("admin", password, "admin")
        password_file = directory / PASSWORD_FILE
        write_secret(password_file, password)
    partial = path.with_name(CONFIG_FILE + ".new")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return {"directory": directory, "url": load(directory).url, "password_file": password_file}


# -- running -------------------------------------------------------------------------------------------------


def running_pid(dashboard: DashboardSettings) -> int | None:
    return pid_running(dashboard.pid_file, "splice.dashboard", str(dashboard.directory))


def healthy(dashboard: DashboardSettings, timeout: float = 1.0) -> bool:
    url = dashboard.url.replace("://0.0.0.0:", "://127.0.0.1:").replace("://[::]:", "://[::1]:")
    # Unverified: a dashboard may serve a self-signed certificate; this sends nothing and asks only whether it answers.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    if not listening(url, timeout):
        return False
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(dashboard: DashboardSettings, lines: int = 15) -> str:
    text = ""
    for file in (dashboard.directory / "logs" / "console.log", dashboard.log_file):
        with contextlib.suppress(FileNotFoundError):
            text += "".join(file.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return text.rstrip() or "(no log output)"


@dataclass(frozen=True)
class Launched:
    """A dashboard ``launch`` started (``process``), or found running (``process`` is ``None``)."""

    dashboard: DashboardSettings
    process: subprocess.Popen[bytes] | None
    pid: int


def launch(directory: Path) -> Launched:
    """Launch the dashboard of ``directory`` unless it runs, without waiting for it (``wait`` does): ``splice start``
    launches it beside the servers, since it needs none of them to start."""
    dashboard = load(directory)
    pid = running_pid(dashboard)
    if pid is not None:
        return Launched(dashboard, None, pid)
    if healthy(dashboard, 0.3):
        raise CliError(f"{dashboard.url} is already answering, but not as the dashboard of {directory}: port taken?")
    logs = dashboard.directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "console.log", "ab") as console:
        process = subprocess.Popen(
            [sys.executable, "-m", "splice.dashboard", str(dashboard.directory)],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=dashboard.directory,
            start_new_session=True,
        )
    dashboard.pid_file.write_text(f"{process.pid}\n")
    return Launched(dashboard, process, process.pid)


def wait(launched: Launched, timeout: float) -> dict[str, Any]:
    """Return once the dashboard ``launch`` started answers ``/healthz`` with 200 (at once if it was running)."""
    dashboard, process = launched.dashboard, launched.process
    deadline = time.monotonic() + timeout
    while process is not None and not healthy(dashboard, 0.5):
        if process.poll() is not None:
            dashboard.pid_file.unlink(missing_ok=True)
            raise CliError(f"the dashboard exited with status {process.returncode}:\n{_tail(dashboard)}")
        if time.monotonic() > deadline:
            raise CliError(
                f"the dashboard did not answer {dashboard.url}/healthz within {timeout:g} s:\n{_tail(dashboard)}"
            )
        time.sleep(POLL)
    return {"name": NAME, "url": dashboard.url, "pid": launched.pid, "started": process is not None}


def start(directory: Path, timeout: float) -> dict[str, Any]:
    """Start the dashboard of ``directory`` unless it runs; return once ``/healthz`` answers 200."""
    return wait(launch(directory), timeout)


def stop(directory: Path, timeout: float) -> dict[str, Any]:
    dashboard = load(directory)
    return stop_one(NAME, running_pid(dashboard), dashboard.pid_file, timeout)


def status(directory: Path) -> dict[str, Any]:
    dashboard = load(directory)
    pid = running_pid(dashboard)
    return {"url": dashboard.url, "pid": pid, "healthy": pid is not None and healthy(dashboard)}


def start_if_configured(settings: Settings, timeout: float) -> dict[str, Any] | None:
    return None if settings.dashboard_dir is None else start(settings.dashboard_dir, timeout)


def launch_if_configured(settings: Settings) -> Launched | None:
    return None if settings.dashboard_dir is None else launch(settings.dashboard_dir)


def stop_if_configured(settings: Settings, timeout: float) -> dict[str, Any] | None:
    return None if settings.dashboard_dir is None else stop(settings.dashboard_dir, timeout)


def status_if_configured(settings: Settings) -> dict[str, Any] | None:
    return None if settings.dashboard_dir is None else status(settings.dashboard_dir)


__all__ = [
    "create_in_cluster",
    "dashboard_of",
    "is_dashboard_dir",
    "start",
    "start_if_configured",
    "status",
    "status_if_configured",
    "stop",
    "stop_if_configured",
]
