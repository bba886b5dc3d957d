"""REST channel throughput: a Splice channel calling a trivial service vs a bare Starlette route, and vs FastAPI.

The Splice server runs as ``splice start`` launches it (uvloop, ``server/loop.py``), once with one process and once
with ``workers = 2`` (two processes sharing its port). The baseline is ``bench/_bare_app.py``: Hypercorn as Splice
runs it, on the asyncio loop; the same app on uvloop and FastAPI on uvicorn (``bench/_fastapi_app.py``, uvicorn's
defaults: uvloop and httptools) are printed beside it. Cases, each run in every round after a warm-up, rounds
alternating the order:

  bare async         Starlette ``async def`` route returning JSON, Hypercorn, asyncio loop (the baseline)
  splice async       channel -> service with ``async def handle`` (runs on the event loop), one process
  splice async x2    the same on a server with ``workers = 2``
  bare async uvloop  the bare app on Hypercorn with uvloop
  fastapi uvicorn    FastAPI ``async def`` route returning a dict, on uvicorn
  bare sync          Starlette plain ``def`` route (Starlette runs it in its thread pool)
  splice sync        channel -> service with plain ``def handle`` (Splice runs it in a worker thread)

Load comes from ``wrk`` (``-t2 -c32`` by default; on a 2-core machine wrk takes its share of the cores, which
caps what two workers can show); without wrk, a small keep-alive load generator in Python (one process per wrk
thread, raw sockets) stands in and says so. Figures are the median over the rounds. Benchmarks are not tests:
nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    BENCH_DIR,
    Cluster,
    Processes,
    bare_app_args,
    create_cluster,
    free_port,
    machine,
    median,
    percentile,
    proc_stats,
    ratio,
    run,
    splice,
    summary,
    table,
    wait_for,
    workdir,
)

TARGET = 1.0
"""Splice async (one process) over bare Starlette on Hypercorn (asyncio), issue 18."""
TARGET_WORKERS = 1.7
"""Splice async with two workers over one, on 2 cores (issue 18)."""
SERVICES = {
    "hello_async.py": """
        from splice.server import Service

        class HelloAsync(Service):
            name = "bench.hello-async"

            async def handle(self):
                self.response.payload = {"hello": "world"}
    """,
    "hello_sync.py": """
        from splice.server import Service

        class HelloSync(Service):
            name = "bench.hello-sync"

            def handle(self):
                self.response.payload = {"hello": "world"}
    """,
}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


@dataclass
class Case:
    name: str
    url: str
    runs: list[Run] = field(default_factory=list)
    pid: int | None = None
    """The server's process: its CPU time and its children's (a server's workers) per request is measured too."""
    cpu_us: list[float] = field(default_factory=list)

    def rps(self) -> float:
        return median([r.rps for r in self.runs])

    def cpu(self) -> float:
        """Median CPU microseconds the server's processes spent per request: what a loaded machine moves least."""
        return median(self.cpu_us) if self.cpu_us else float("nan")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every process under it."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for pid_, fields in proc_stats():
        parents[pid_] = int(fields[1])
        ticks[pid_] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += ticks.get(current, 0)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return total / os.sysconf("SC_CLK_TCK")


# -- wrk ---------------------------------------------------------------------------------------------------


def _grab(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1) if found else None


def _wrk_ms(text: str | None) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text or "")
    if found is None:
        return float("nan")
    return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found.group(2)]


def run_wrk(url: str, threads: int, connections: int, seconds: float) -> Run:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    rps = _grab(r"Requests/sec:\s+([\d.]+)", out)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out))
    return Run(float(rps), _wrk_ms(_grab(r"^\s+50%\s+(\S+)", out)), _wrk_ms(_grab(r"^\s+99%\s+(\S+)", out)), errors)


# -- the fallback load generator -----------------------------------------------------------------------------


async def _connection(host: str, port: int, path: str, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    errors = 0
    try:
        while time.perf_counter() < until:
            began = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - began)
            errors += not 200 <= status < 400
    finally:
        writer.close()
    return errors


def _loadgen_process(job: tuple[str, int, str, int, float]) -> tuple[list[float], int, float]:
    host, port, path, connections, seconds = job

    async def main() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        began = time.perf_counter()
        until = began + seconds
        errors = await asyncio.gather(*(_connection(host, port, path, until, latencies) for _ in range(connections)))
        return latencies, sum(errors), time.perf_counter() - began

    return asyncio.run(main())


def run_python(url: str, threads: int, connections: int, seconds: float) -> Run:
    match = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"cannot load {url}: expected http://HOST:PORT/PATH")
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    share = [connections // threads + (i < connections % threads) for i in range(threads)]
    with multiprocessing.get_context("fork").Pool(threads) as pool:
        parts = pool.map(_loadgen_process, [(host, port, path, n, seconds) for n in share if n])
    latencies = [x for part in parts for x in part[0]]
    elapsed = max(part[2] for part in parts)
    return Run(
        len(latencies) / elapsed,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
        sum(part[1] for part in parts),
    )


# -- setting up and measuring (``outgoing_rest.py`` uses these too) -----------------------------------------

Load = Callable[[str, int, int, float], Run]


def check_answer(url: str) -> None:
    import httpx

    answer = httpx.get(url, timeout=10)
    if answer.status_code != 200 or answer.json() != {"hello": "world"}:
        raise RuntimeError(f"{url} answered {answer.status_code} {answer.text[:200]!r}")


def deploy_behind_channels(cluster: Cluster, work: Path, package: str, services: dict[str, str], stem: str) -> None:
    """Deploy ``services`` (file name -> source) as modules of ``package`` with ``splice deploy``, then one
    channel each for ``bench.STEM-async`` and ``bench.STEM-sync`` at ``/STEM-async`` and ``/STEM-sync``."""
    root = work / "project"
    folder = root / package
    folder.mkdir(parents=True)
    for file, source in services.items():
        (folder / file).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
        splice("deploy", str(folder / file), "--cluster", str(cluster.directory), "--root", str(root))
    for kind in ("async", "sync"):
        splice(
            "channel",
            "create",
            "--cluster",
            str(cluster.directory),
            "--name",
            f"{stem}-{kind}",
            "--path",
            f"/{stem}-{kind}",
            "--service",
            f"bench.{stem}-{kind}",
        )


def load_options(description: str) -> argparse.ArgumentParser:
    """The options of a benchmark that loads HTTP endpoints: run length, rounds, wrk's ``-t``/``-c``, which
    load generator, ``--keep``."""
    parser = argparse.ArgumentParser(description=description, epilog="Prints req/s and Splice/bare ratios.")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run (default 5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each run (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per case; the median counts (default 3)")
    parser.add_argument("--threads", "-t", type=int, default=2, help="load generator threads (default 2)")
    parser.add_argument("--connections", "-c", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument(
        "--loadgen", choices=["auto", "wrk", "python"], default="auto", help="auto: wrk if installed, else python"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser


def pick_load(choice: str) -> tuple[str, Load] | None:
    """The load generator ``--loadgen`` asks for (``auto``: wrk if installed, saying so when it is not), or
    None, said on stderr, when wrk was asked for and is not installed."""
    if choice == "auto":
        choice = "wrk" if shutil.which("wrk") else "python"
        if choice == "python":
            print("wrk is not installed (apt-get install -y wrk): using the Python load generator instead,")
            print("which is much slower than wrk; the ratios still compare like with like.\n")
    elif choice == "wrk" and not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk, or use --loadgen python", file=sys.stderr)
        return None
    return choice, run_wrk if choice == "wrk" else run_python


def measure(title: str, cases: list[Case], loadgen: tuple[str, Load], args: argparse.Namespace) -> None:
    """Check that every case answers ``{"hello": "world"}``, then run each case every round after its warm-up,
    alternating the order from round to round, printing each run."""
    name, load = loadgen
    for case in cases:
        check_answer(case.url)
    print(f"{title}: {name} -t{args.threads} -c{args.connections}, {args.duration:g} s runs after")
    print(f"{args.warmup:g} s warm-up, {args.rounds} rounds; {machine()}")
    for index in range(args.rounds):
        for case in cases if index % 2 == 0 else cases[::-1]:
            if args.warmup > 0:
                load(case.url, args.threads, args.connections, args.warmup)
            before = tree_cpu(case.pid) if case.pid else 0.0
            result = load(case.url, args.threads, args.connections, args.duration)
            case.runs.append(result)
            if case.pid and result.rps:
                spent = tree_cpu(case.pid) - before
                case.cpu_us.append(spent * 1e6 / (result.rps * max(1, round(args.duration))))
            print(f"  round {index + 1}  {case.name:17} {result.rps:9,.0f} req/s", flush=True)


def case_table(cases: list[Case]) -> str:
    """One row per case: median, min and max req/s, median p50 and p99, errors over all rounds, and the server's CPU
    per request when measured."""
    rows = [
        [
            case.name,
            case.rps(),
            min(r.rps for r in case.runs),
            max(r.rps for r in case.runs),
            median([r.p50_ms for r in case.runs]),
            median([r.p99_ms for r in case.runs]),
            sum(r.errors for r in case.runs),
            case.cpu(),
        ]
        for case in cases
    ]
    return table(["case", "req/s (median)", "min", "max", "p50 ms", "p99 ms", "errors", "server CPU us/req"], rows)


def start_splice(work: Path, procs: Processes, workers: int = 1, name: str = "cluster") -> Cluster:
    extra = ("--workers", str(workers)) if workers != 1 else ()
    cluster = create_cluster(work, name, procs, 1, *extra)
    splice("start", str(cluster.directory))
    deploy_behind_channels(cluster, work / name, "bench_rest", SERVICES, "hello")
    return cluster


def fastapi_args(port: int) -> list[str]:
    """FastAPI on uvicorn with uvicorn's defaults (uvloop and httptools with ``uvicorn[standard]``), no access log."""
    app = ["_fastapi_app:app", "--app-dir", str(BENCH_DIR), "--host", "127.0.0.1", "--port", str(port)]
    return [sys.executable, "-m", "uvicorn", *app, "--no-access-log", "--log-level", "warning"]


def main() -> int:
    parser = load_options(__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers of the second Splice server (default 2)")
    parser.add_argument("--no-sync", action="store_true", help="leave out the plain def cases")
    args = parser.parse_args()
    loadgen = pick_load(args.loadgen)
    if loadgen is None:
        return 2

    with workdir(args.keep, "splice-bench-rest-") as work, Processes() as procs:
        urls: dict[str, str] = {}
        pids: dict[str, int] = {}
        for name, command in (
            ("bare", bare_app_args),
            ("uvloop", lambda port: [*bare_app_args(port), "--loop", "uvloop"]),
            ("fastapi", fastapi_args),
        ):
            port = free_port()
            proc = procs.start(command(port))
            urls[name], pids[name] = f"http://127.0.0.1:{port}", proc.pid
            wait_for(urls[name] + "/ping", proc=proc)
        for name, workers in (("splice", 1), ("workers", args.workers)):
            cluster = start_splice(work, procs, workers, "cluster" if workers == 1 else "cluster-workers")
            urls[name], pids[name] = cluster.url, cluster.server_pid()
        many = f"splice async x{args.workers}"
        cases = [
            Case("bare async", urls["bare"] + "/hello-async", pid=pids["bare"]),
            Case("splice async", urls["splice"] + "/hello-async", pid=pids["splice"]),
            Case(many, urls["workers"] + "/hello-async", pid=pids["workers"]),
            Case("bare async uvloop", urls["uvloop"] + "/hello-async", pid=pids["uvloop"]),
            Case("fastapi uvicorn", urls["fastapi"] + "/hello-async", pid=pids["fastapi"]),
        ]
        if not args.no_sync:
            cases.append(Case("bare sync", urls["bare"] + "/hello-sync", pid=pids["bare"]))
            cases.append(Case("splice sync", urls["splice"] + "/hello-sync", pid=pids["splice"]))
        measure("REST", cases, loadgen, args)

    print()
    print(case_table(cases))
    by = {c.name: c.rps() for c in cases}
    cpu = {c.name: c.cpu() for c in cases}
    print()
    ratios = [
        ["splice async / bare async (Hypercorn, asyncio)", ratio(by["splice async"], by["bare async"])],
        [f"{many} / splice async", ratio(by[many], by["splice async"])],
        ["splice async / fastapi uvicorn", ratio(by["splice async"], by["fastapi uvicorn"])],
        ["splice async / bare async uvloop", ratio(by["splice async"], by["bare async uvloop"])],
        ["server CPU per request: bare async / splice async", ratio(cpu["bare async"], cpu["splice async"])],
    ]
    if not args.no_sync:
        ratios.append(["splice sync / bare sync", ratio(by["splice sync"], by["bare sync"])])
    print(table(["ratio (req/s)", "value"], [[name, f"{value:.2f}"] for name, value in ratios]))
    print(f"\ntargets: Splice async at least {TARGET:.2f} of bare async; {args.workers} workers at least")
    print(f"{TARGET_WORKERS:.2f} of one (issue 18, 2 workers on 2 cores); load average {_loadavg()}")
    one = ("bare Starlette on Hypercorn", by["bare async"])
    summary("rest, async REST channel, 1 worker", by["splice async"], "req/s", one, f">= {TARGET:g}x")
    summary(
        f"rest, async REST channel, {many}",
        by[many],
        "req/s",
        ("Splice 1 worker", by["splice async"]),
        f">= {TARGET_WORKERS:g}x",
    )
    summary(
        "rest, async REST channel vs FastAPI",
        by["splice async"],
        "req/s",
        ("FastAPI on uvicorn", by["fastapi uvicorn"]),
    )
    summary(
        "rest, async REST channel vs Hypercorn on uvloop",
        by["splice async"],
        "req/s",
        ("bare Starlette on Hypercorn with uvloop", by["bare async uvloop"]),
    )
    return 0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "-"


if __name__ == "__main__":
    run(main)
