"""Shared helpers of the benchmarks: processes, ports, clusters, pings, RSS and tables.

Every process a benchmark starts goes through ``Processes`` (its own session, so its own process
group); leaving the ``with`` block, even on an error or Ctrl-C, stops each group it started by id.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BARE_APP = BENCH_DIR / "_bare_app.py"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def ensure_venv() -> None:
    """Re-run this script under the project's virtual environment when Splice is not importable here."""
    try:
        import splice.server  # noqa: F401
    except ImportError:
        if VENV_PYTHON.exists() and not os.environ.get("SPLICE_BENCH_REEXEC"):
            os.environ["SPLICE_BENCH_REEXEC"] = "1"
            os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), *sys.argv])
        sys.exit("splice is not importable: run this with the project's virtual environment (.venv/bin/python)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _on_signal(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(main: Callable[[], int]) -> NoReturn:
    """Run a benchmark's ``main``: in the project's venv; SIGTERM and Ctrl-C stop it after its clean-up ran."""
    ensure_venv()
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted; the processes this benchmark started are stopped", file=sys.stderr)
        code = 130
    sys.exit(code)


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """Every process now: its pid and the fields of ``/proc/PID/stat`` after the command (state, ppid, pgrp, ...:
    ``fields[0]`` is field 3 of proc(5))."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        yield int(entry), stat[stat.rindex(")") + 2 :].split()


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: orphans (a server's helper
    after the server ended) are reaped by PID 1, which on some machines takes a second or two."""
    return any(int(fields[2]) == pgid and fields[0] != "Z" for _, fields in proc_stats())


def _kill_group(pgid: int, timeout: float = 5.0) -> None:
    """SIGTERM the process group ``pgid``, SIGKILL it if anything of it still runs after ``timeout``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-pgid, os.WNOHANG)[0]:
                pass
        if not _group_alive(pgid):
            return
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Processes:
    """Starts processes in their own process groups and stops exactly those groups at the end."""

    def __init__(self) -> None:
        self.groups: list[int] = []
        self.clusters: list[Path] = []
        self.popens: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        self.groups.append(proc.pid)
        self.popens.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        _kill_group(proc.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        if proc.pid in self.groups:
            self.groups.remove(proc.pid)

    def watch_cluster(self, directory: Path) -> None:
        """Remember a cluster directory: its servers (started by ``splice start``) are stopped at the end."""
        if directory not in self.clusters:
            self.clusters.append(directory)

    def close(self) -> None:
        for directory in self.clusters:
            with contextlib.suppress(Exception):
                splice("stop", str(directory), "--timeout", "5", check=False, timeout=20)
            for pid_file in [*directory.glob("*/server.pid"), *directory.glob("*/scheduler.pid")]:
                with contextlib.suppress(ValueError, OSError):
                    _kill_group(int(pid_file.read_text().strip()), 2.0)
        for pgid in reversed(self.groups):
            _kill_group(pgid)
        for proc in self.popens:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2)
        self.groups.clear()
        self.clusters.clear()


@contextlib.contextmanager
def workdir(keep: bool, prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"(kept {path})")
        else:
            shutil.rmtree(path, ignore_errors=True)


def splice(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``splice`` command with this interpreter."""
    result = subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"splice {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


@dataclass
class Cluster:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return (self.directory / "admin-token").read_text().strip()

    @property
    def pid_file(self) -> Path:
        return self.directory / "server1" / "server.pid"

    def server_pid(self) -> int:
        return int(self.pid_file.read_text().strip())


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free now."""
    for _ in range(200):
        base = random.randrange(10000, 32000)  # below Linux's ephemeral range (32768-60999)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


def create_cluster(parent: Path, name: str, procs: Processes, servers: int = 1, *extra: str) -> Cluster:
    """A cluster without a load balancer; ``Cluster.port`` is server1's (the others follow it)."""
    base = free_ports(servers + 1)
    directory = parent / name
    splice(
        "quickstart",
        "create",
        str(directory),
        "--port",
        str(base),
        "--servers",
        str(servers),
        "--no-load-balancer",
        *extra,
    )
    procs.watch_cluster(directory)
    return Cluster(directory, base + 1)


def ping(url: str, timeout: float = 0.5) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_for(
    url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None, step: float = 0.002
) -> float:
    """Poll ``url`` until it answers; returns the time.perf_counter() of the first answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(url, 0.5) is not None:
            return time.perf_counter()
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with status {proc.returncode} before {url} answered")
        time.sleep(step)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def bare_app_args(port: int) -> list[str]:
    """The command of the baseline server: Starlette on Hypercorn, configured the way Splice's server is."""
    return [sys.executable, str(BARE_APP), "--port", str(port)]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, RssAnon (KiB) of a process, from /proc/PID/status."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return ""


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 50 values is the largest but none)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(label: str, values: Sequence[float]) -> list[object]:
    """A table row: label, n, p50, p99, min, max."""
    return [label, len(values), median(values), percentile(values, 99), min(values), max(values)]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def machine() -> str:
    return f"{os.cpu_count()} cores, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M')}"


SUMMARY_PREFIX = "SUMMARY "
"""How ``bench/run`` finds each script's figures in its output: the lines that start with it."""


def _figure(value: float) -> str:
    if value != value:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def summary(
    name: str,
    value: float,
    unit: str,
    baseline: tuple[str, float] | None = None,
    target: str | None = None,
) -> str:
    """Print (and return) one figure for ``bench/run``'s closing table, as the last lines of a script::

        SUMMARY start, server run to ping: 0.61 s (baseline bare Starlette: 0.22 s, ratio 2.77); target <= 0.5 s

    ``name`` says what was measured and on what (no ``": "`` in it); ``unit`` is ``s``, ``ms``, ``req/s``, ``MiB``...;
    ``baseline`` is ``(what, value)`` measured in the same run, in the same unit (the ratio is value / baseline);
    ``target`` the issue's goal, as text (``<= 15 ms``). Without a baseline the parenthesis says ``no baseline``.
    """
    if ": " in name:
        raise ValueError(f"summary name {name!r}: no ': ' in a name (bench/run splits the line there)")
    line = f"{SUMMARY_PREFIX}{name}: {_figure(value)} {unit}"
    if baseline is None:
        line += " (no baseline)"
    else:
        what, base = baseline
        line += f" (baseline {what}: {_figure(base)} {unit}, ratio {ratio(value, base):.2f})"
    if target:
        line += f"; target {target}"
    print(line, flush=True)
    return line
