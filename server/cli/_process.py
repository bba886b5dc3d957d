"""What the ``splice`` command's life-cycle commands share: the one-line error, and the processes they start."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

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


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def tail(settings: Settings, name: str, lines: int = 15) -> str:
    logs = settings.server_dir(name) / "logs"
    text = ""
    for file in ("console.log", "server.log", "scheduler.log"):
        with contextlib.suppress(FileNotFoundError):
            text += "".join((logs / file).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return text.rstrip() or "(no log output)"
