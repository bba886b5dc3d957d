"""The scheduler processes of a cluster directory, for ``splice start``, ``stop`` and ``status``.

Each scheduler named in ``cluster.toml`` runs as ``python -m splice.scheduler DIR --name NAME`` in
``DIR/NAME`` and says what it is doing in ``DIR/NAME/scheduler.state``; ``start`` returns once each one
is up, active or standing by.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from ._process import CliError, pid_running, stop_one, tail

STATE_FILE = "scheduler.state"
"""``splice.server.jobs.SCHEDULER_STATE_FILE``, spelled out so that ``splice start`` does not import the jobs
package (pydantic job models, ~40 ms) to find a file name (a test checks that both agree)."""

POLL = 0.005
"""Seconds between two reads of a starting scheduler's state file (a read is a few microseconds)."""


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.server_dir(name) / "scheduler.pid"


def read_state(settings: Settings, name: str) -> dict[str, Any] | None:
    """What scheduler ``name`` last said of itself (``scheduler.state``), or ``None``."""
    try:
        state = json.loads((settings.server_dir(name) / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def running_pid(settings: Settings, name: str) -> int | None:
    return pid_running(_pid_file(settings, name), "splice.scheduler", name)


def launch(settings: Settings) -> dict[str, subprocess.Popen[bytes]]:
    """Launch every scheduler that is not running, without waiting for it (``wait`` does): ``splice start`` launches
    them beside the servers, since a scheduler needs only the ODB to start."""
    launched: dict[str, subprocess.Popen[bytes]] = {}
    for name in settings.scheduler.names:
        if running_pid(settings, name) is not None:
            continue
        logs = settings.server_dir(name) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        (settings.server_dir(name) / STATE_FILE).unlink(missing_ok=True)
        with open(logs / "console.log", "ab") as console:
            launched[name] = subprocess.Popen(
                [sys.executable, "-m", "splice.scheduler", str(settings.directory), "--name", name],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=settings.server_dir(name),
                start_new_session=True,
            )
        _pid_file(settings, name).write_text(f"{launched[name].pid}\n")
    return launched


def wait(settings: Settings, launched: dict[str, subprocess.Popen[bytes]], timeout: float) -> list[dict[str, Any]]:
    """Return once each scheduler ``launch`` started is up (active or standing by), one result per scheduler."""
    results = []
    deadline = time.monotonic() + timeout
    for name in settings.scheduler.names:
        process = launched.get(name)
        while process is not None:
            state = read_state(settings, name)
            if state and state.get("pid") == process.pid and state.get("state") in ("active", "standby"):
                break
            if process.poll() is not None:
                _pid_file(settings, name).unlink(missing_ok=True)
                raise CliError(f"{name} exited with status {process.returncode}:\n{tail(settings, name)}")
            if time.monotonic() > deadline:
                raise CliError(f"{name} did not start within {timeout:g} s:\n{tail(settings, name)}")
            time.sleep(POLL)
        state = read_state(settings, name) or {}
        results.append(
            {
                "name": name,
                "pid": running_pid(settings, name),
                "started": process is not None,
                "state": state.get("state"),
            }
        )
    return results


def start(settings: Settings, timeout: float) -> list[dict[str, Any]]:
    """Start every scheduler that is not running; return once each is up (active or standing by)."""
    return wait(settings, launch(settings), timeout)


def stop(settings: Settings, timeout: float) -> list[dict[str, Any]]:
    names = settings.scheduler.names
    return [stop_one(name, running_pid(settings, name), _pid_file(settings, name), timeout) for name in names]


def status(settings: Settings) -> list[dict[str, Any]]:
    out = []
    for name in settings.scheduler.names:
        pid = running_pid(settings, name)
        state = read_state(settings, name) if pid is not None else None
        running = state is not None and state.get("pid") == pid
        out.append({"name": name, "pid": pid, "state": state["state"] if running and state else "stopped"})
    return out


__all__ = ["launch", "read_state", "running_pid", "start", "status", "stop", "wait"]
