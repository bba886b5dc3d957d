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
from ..jobs.manager import SCHEDULER_STATE_FILE as STATE_FILE
from ._process import CliError, pid_running, stop_one, tail


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


def start(settings: Settings, timeout: float) -> list[dict[str, Any]]:
    """Start every scheduler that is not running; return once each is up (active or standing by)."""
    launched: dict[str, subprocess.Popen[bytes]] = {}
    results = []
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
            time.sleep(0.02)
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


__all__ = ["read_state", "running_pid", "start", "status", "stop"]
