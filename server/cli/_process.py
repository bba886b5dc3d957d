"""What the ``splice`` command's life-cycle commands share: the one-line error, and the processes they start."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Settings


class CliError(Exception):
    """One clear line for the user, and the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def pid_running(pid_file: Path, module: str, name: str) -> int | None:
    """The pid in ``pid_file`` if that process runs and is still ``python -m <module> ... <name>`` (not another
    process that got the number after a reboot), else ``None``."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if not alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid  # no /proc to ask: trust the pid file
    return pid if module.encode() in argv and name.encode() in argv else None


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_one(name: str, pid: int | None, pid_file: Path, timeout: float) -> dict[str, Any]:
    """Stop process ``pid`` (SIGTERM, then SIGKILL after ``timeout``) and remove its pid file; ``None``: not running."""
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return {"name": name, "stopped": False}
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        reap(pid)
        time.sleep(0.02)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return {"name": name, "stopped": True, "pid": pid}


def tail(settings: Settings, name: str, lines: int = 15) -> str:
    logs = settings.server_dir(name) / "logs"
    text = ""
    for file in ("console.log", "server.log", "scheduler.log"):
        with contextlib.suppress(FileNotFoundError):
            text += "".join((logs / file).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return text.rstrip() or "(no log output)"
