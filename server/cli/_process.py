"""What the ``splice`` command's life-cycle commands share: the one-line error, and the processes they start."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
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


def command_line(pid: int) -> str:
    """What process ``pid`` runs, as ``ps`` would show it (from ``/proc/PID/cmdline``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "(its command line cannot be read)"
    return " ".join(arg.decode(errors="replace") for arg in argv) or "(no command line: a kernel thread or a zombie)"


def age(pid: int) -> float | None:
    """Seconds since process ``pid`` started (``None`` without ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))


def state(pid: int) -> str:
    """The process state letter (``R``, ``S``, ``T`` stopped, ``Z``...), ``?`` if unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return "?"


def describe(pid: int) -> str:
    """``pid 123 (python -m ...), running for 2 min 5 s``: a process as the user can find it again."""
    text = f"pid {pid} ({command_line(pid)})"
    seconds = age(pid)
    if seconds is not None:
        text += (
            f", running for {int(seconds // 60)} min {int(seconds % 60)} s"
            if seconds >= 60
            else f", running for {seconds:.0f} s"
        )
    if state(pid) == "T":
        text += f", stopped by a signal (SIGSTOP: 'kill -CONT {pid}' resumes it)"
    return text


def listening(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections where ``url`` points: a connect and a close, ~30 us, where an HTTP
    request through urllib costs ~1 ms of CPU. ``splice start`` polls a starting part every few milliseconds and
    shares the CPU with it: it asks over HTTP only once the part listens."""
    where = urllib.parse.urlsplit(url)
    try:
        port = where.port or (443 if where.scheme == "https" else 80)
        with socket.create_connection((where.hostname or "127.0.0.1", port), timeout):
            return True
    except (OSError, ValueError):
        return False


def probe(base_url: str, timeout: float = 1.0) -> tuple[int, dict[str, Any]] | None:
    """A server's ping answer with its status, 503s included (``draining``, ``saturated``: alive, not taking calls);
    ``None`` when nothing answers there in JSON."""
    if not listening(base_url, timeout):
        return None
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/splice/ping", timeout=timeout) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, dict(json.loads(exc.read()))
        except (ValueError, TypeError, OSError):
            return None
    except (urllib.error.URLError, OSError, ValueError, TypeError):
        return None


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_holders(port: int) -> list[int]:
    """The pids of this user's processes listening on TCP ``port`` (from ``/proc``; another user's are not seen)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    found: list[int] = []
    if not inodes:
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
    return sorted(found)


def port_taken(name: str, host: str, port: int, directory: Path) -> str:
    """What to tell the user when ``name``'s port is held by a process that is not that server."""
    holders = [pid for pid in port_holders(port) if pid != os.getpid()]
    if not holders:
        return (
            f"{name} cannot listen on {host}:{port}: the port is taken by a process this user cannot see "
            f"(another user's: 'ss -ltnp sport = :{port}' as root names it); stop it or give {name} another port "
            f"in {directory}/cluster.toml"
        )
    listed = "; ".join(describe(pid) for pid in holders)
    kill = " ".join(str(pid) for pid in holders)
    return (
        f"{name} cannot listen on {host}:{port}: the port is held by {listed}. If that is an old Splice process, "
        f"end it ('kill {kill}', or 'splice stop {directory}'), else give {name} another port in "
        f"{directory}/cluster.toml; then run 'splice start {directory}' again"
    )
