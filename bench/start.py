"""Start-up: from launching a server until its ping answers, with 100 deployed modules (one service each).

Cases, each repeated and interleaved (the median counts):

  bare Starlette          ``bench/_bare_app.py`` (Hypercorn, started the way a Splice server is) -> GET /ping
  splice server, 0 mods   ``python -m splice.server.cli server run DIR`` on an empty cluster -> GET /splice/ping
  splice server, 100 mods the same on the cluster holding 100 modules
  splice start, 100 mods  the ``splice start DIR`` command (CLI start-up, ODB check, launching the server)
                          -> first GET /splice/ping answered; the time the command itself returned is shown too
  splice start, quickstart  ``splice start DIR`` of ``splice quickstart create DIR`` (2 servers, HAProxy when
                          installed, a scheduler, the dashboard, SQLite): when the command returned, and when each
                          part first answered (a server's ping, HAProxy's monitor URI, the dashboard's /healthz,
                          the scheduler's state file saying active or standby)

For ``server run`` the CPU seconds the server process had used when it answered are shown too (user + system,
from /proc): a figure that moves less than wall time when other work shares the machine.

And what imports cost, each a fresh ``python -c`` (interpreter start-up included; ``python -c pass`` is the
baseline): ``import splice.server`` (what services, users' tests and the CLI import), pydantic's ``BaseModel``
alone, and the server's composition root (what ``server run`` imports before it can serve). ``--imports-only``
measures only these.

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from _common import (
    Cluster,
    Processes,
    bare_app_args,
    create_cluster,
    free_port,
    free_ports,
    machine,
    median,
    ratio,
    run,
    splice,
    summary,
    table,
    wait_for,
    workdir,
)

TARGET_S = 0.5
MODULE = textwrap.dedent(
    """
    from splice.server import Service


    class Service{index:03d}(Service):
        \"\"\"Start-up benchmark service {index}.\"\"\"

        name = "bench.start.s{index:03d}"

        class Input:
            id: int

        async def handle(self):
            self.response.payload = {{"id": self.request.input["id"], "module": {index}}}
    """
).lstrip()


def deploy_modules(cluster: Cluster, count: int) -> None:
    import httpx

    modules = [{"path": f"bench_start/m{i:03d}.py", "source": MODULE.format(index=i)} for i in range(count)]
    headers = {"Authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=120) as admin:
        for first in range(0, count, 25):
            answer = admin.post("/splice/admin/deploy", json={"modules": modules[first : first + 25]})
            if answer.status_code != 200:
                raise RuntimeError(f"deploy answered {answer.status_code}: {answer.text[:500]}")


def server_info(cluster: Cluster) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {cluster.token}"}
    return dict(httpx.get(cluster.url + "/splice/admin/server", headers=headers, timeout=10).json())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_process(
    procs: Processes, args: list[str], url: str, check: Cluster | None, env: dict[str, str]
) -> tuple[float, float, dict[str, Any]]:
    """Seconds from launch until ``url`` answered, CPU seconds the process had used then, the server's info."""
    began = time.perf_counter()
    proc = procs.start(args, env=env)
    try:
        answered = wait_for(url, proc=proc, step=0.001)
        cpu = cpu_seconds(proc.pid)
        info = server_info(check) if check is not None else {}
    finally:
        procs.stop(proc)
    return answered - began, cpu, info


def time_splice_start(procs: Processes, cluster: Cluster, env: dict[str, str]) -> tuple[float, float]:
    args = [sys.executable, "-m", "splice.server.cli", "start", str(cluster.directory)]
    began = time.perf_counter()
    proc = procs.start(args, stderr=subprocess.PIPE, env=env)
    try:
        answered = wait_for(cluster.url + "/splice/ping", proc=None, step=0.001)
        proc.wait(60)
        returned = time.perf_counter()
        if proc.returncode != 0:
            error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"splice start exited {proc.returncode}: {error[-2000:]}")
    finally:
        procs.stop(proc)
        splice("stop", str(cluster.directory))
    return answered - began, returned - began


def quickstart(parent: Path, procs: Processes) -> Path:
    """``splice quickstart create``: 2 servers, HAProxy when installed, a scheduler, the dashboard, SQLite."""
    base = free_ports(4)  # the dashboard, HAProxy, server1, server2
    directory = parent / "quickstart"
    splice("quickstart", "create", str(directory), "--port", str(base + 1))
    procs.watch_cluster(directory)
    return directory


def answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def quickstart_parts(directory: Path) -> dict[str, Any]:
    """What each part of the cluster answers when it is up, from ``splice status --json`` (it is down now)."""
    status = json.loads(splice("status", str(directory), "--json", check=False).stdout)
    parts: dict[str, Any] = {s["name"]: s["url"] + "/splice/ping" for s in status["servers"]}
    if status.get("load_balancer"):
        parts["haproxy"] = status["load_balancer"]["url"] + "/haproxy/alive"
    for scheduler in status["schedulers"]:
        parts[scheduler["name"]] = directory / scheduler["name"] / "scheduler.state"
    if status.get("dashboard"):
        parts["dashboard"] = status["dashboard"]["url"] + "/healthz"
    return parts


def _up(where: str | Path) -> bool:
    if isinstance(where, Path):  # a scheduler: its state file says active or standby
        try:
            return json.loads(where.read_text()).get("state") in ("active", "standby")
        except (OSError, ValueError):
            return False
    return answers(where)


def time_quickstart_start(
    procs: Processes, directory: Path, parts: dict[str, Any], env: dict[str, str]
) -> dict[str, float]:
    """Run ``splice start`` on the stopped quickstart cluster; seconds until it returned and until each part was up."""
    args = [sys.executable, "-m", "splice.server.cli", "start", str(directory)]
    began = time.perf_counter()
    proc = procs.start(args, stderr=subprocess.PIPE, env=env)
    seen: dict[str, float] = {}
    try:
        while "returned" not in seen or len(seen) <= len(parts):
            if "returned" not in seen and proc.poll() is not None:
                seen["returned"] = time.perf_counter() - began
            for name, where in parts.items():
                if name not in seen and _up(where):
                    seen[name] = time.perf_counter() - began
            if time.perf_counter() - began > 60:
                missing = sorted({"returned", *parts} - set(seen))
                raise RuntimeError(f"60 s after splice start began, still waiting for: {', '.join(missing)}")
            time.sleep(0.002)
        if proc.returncode != 0:
            error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"splice start exited {proc.returncode}: {error[-2000:]}")
    finally:
        procs.stop(proc)
        splice("stop", str(directory))
    return seen


IMPORTS = {
    "python -c pass": "pass",
    "import splice.server": "import splice.server",
    "import splice.server + pydantic": "import splice.server, pydantic.main",
    "from pydantic import BaseModel": "from pydantic import BaseModel",
    "import splice.server.bootstrap": "import splice.server.bootstrap",
}
"""Import cases: the code each fresh interpreter runs; the first is the baseline. ``+ pydantic`` is what
``import splice.server`` would cost if the service model imported pydantic up front."""


def import_env(cache: Path) -> dict[str, str]:
    """Bytecode written to and read from ``cache``, as an installed Splice has it (even if this shell says
    PYTHONDONTWRITEBYTECODE, which would make every run compile Splice's modules again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def time_import(code: str, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - began


def loads_pydantic(module: str, env: dict[str, str]) -> bool:
    code = f"import sys, {module}; print('pydantic.main' in sys.modules)"
    answer = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return answer.stdout.strip() == "True"


def import_table(times: dict[str, list[float]]) -> str:
    base = median(times["python -c pass"])
    rows = [
        [name, median(v) * 1000, min(v) * 1000, max(v) * 1000, (median(v) - base) * 1000, ratio(median(v), base)]
        for name, v in times.items()
    ]
    headers = ["fresh interpreter (ms)", "median", "min", "max", "minus python", "ratio to python"]
    return table(headers, rows)


def measure_imports(repeat: int, env: dict[str, str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for _ in range(repeat):
        for name, code in IMPORTS.items():
            times[name].append(time_import(code, env))
    return times


def print_imports(times: dict[str, list[float]], env: dict[str, str]) -> None:
    print()
    print(import_table(times))
    loaded = {module: loads_pydantic(module, env) for module in ("splice.server", "splice.server.bootstrap")}
    print("pydantic imported by: " + ", ".join(f"{m} {'yes' if v else 'no'}" for m, v in loaded.items()))
    print("(bytecode cached under a prefix of this run's own, written by a first run that is not counted)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Prints seconds and Splice/bare ratios."
    )
    parser.add_argument("--modules", type=int, default=100, help="deployed modules, one service each (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="starts per case; the median counts (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--imports-only", action="store_true", help="measure only what imports cost")
    parser.add_argument(
        "--bytecode",
        choices=("cached", "none"),
        default="cached",
        help="cached (default): every process reads bytecode from a cache of this run, as an installed Splice or "
        "an editable one without PYTHONDONTWRITEBYTECODE does; none: PYTHONDONTWRITEBYTECODE=1, so every process "
        "compiles Splice's modules again (an editable install in a shell that sets it, as these machines' shells do)",
    )
    args = parser.parse_args()
    if args.imports_only:
        with workdir(args.keep, "splice-bench-start-") as work:
            env = import_env(work / "pycache")
            measure_imports(1, env)
            print(f"start: imports, {args.repeat * 3} rounds; {machine()}")
            print_imports(measure_imports(args.repeat * 3, env), env)
        return 0

    with workdir(args.keep, "splice-bench-start-") as work, Processes() as procs:
        full = create_cluster(work, "full", procs)
        empty = create_cluster(work, "empty", procs)
        quick = quickstart(work, procs)
        parts = quickstart_parts(quick)
        splice("start", str(full.directory))
        deploy_modules(full, args.modules)
        splice("stop", str(full.directory))
        bare_port = free_port()
        run_args = [sys.executable, "-m", "splice.server.cli", "server", "run"]
        cases: dict[str, tuple[list[str], str, Cluster | None]] = {
            "bare Starlette + Hypercorn": (bare_app_args(bare_port), f"http://127.0.0.1:{bare_port}/ping", None),
            "splice server run, 0 modules": ([*run_args, str(empty.directory)], empty.url + "/splice/ping", empty),
            f"splice server run, {args.modules} modules": (
                [*run_args, str(full.directory)],
                full.url + "/splice/ping",
                full,
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        cpu: dict[str, list[float]] = {name: [] for name in cases}
        quick_times: dict[str, list[float]] = {name: [] for name in ["returned", *parts]}
        imports: dict[str, list[float]] = {name: [] for name in IMPORTS}
        env = import_env(work / "pycache")
        measure_imports(1, env)
        uncached = {k: v for k, v in env.items() if k != "PYTHONPYCACHEPREFIX"} | {"PYTHONDONTWRITEBYTECODE": "1"}
        run_env = env if args.bytecode == "cached" else uncached
        for command, url, check in cases.values():  # not counted: fills the bytecode cache of this run
            time_process(procs, command, url, check, run_env)
        time_quickstart_start(procs, quick, parts, run_env)
        start_ping: list[float] = []
        start_return: list[float] = []
        infos: dict[str, dict[str, Any]] = {}
        print(f"start: {args.repeat} starts per case, {args.modules} modules, bytecode {args.bytecode}; {machine()}")
        for index in range(args.repeat):
            for name, (command, url, check) in cases.items():
                seconds, used, info = time_process(procs, command, url, check, run_env)
                times[name].append(seconds)
                cpu[name].append(used)
                infos[name] = info
            answered, returned = time_splice_start(procs, full, run_env)
            for name, seconds in time_quickstart_start(procs, quick, parts, run_env).items():
                quick_times[name].append(seconds)
            for name, values in measure_imports(3, env).items():
                imports[name] += values
            start_ping.append(answered)
            start_return.append(returned)
            print(f"  round {index + 1}: " + ", ".join(f"{v[-1]:.3f}" for v in times.values()), end="")
            print(f", {answered:.3f} / {returned:.3f} s", end="")
            print(f", quickstart returned {quick_times['returned'][-1]:.3f} s", flush=True)

    for name, info in infos.items():
        if info and (info.get("load_failures") or info.get("modules") not in (0, args.modules)):
            print(f"warning: {name}: {info.get('modules')} modules, failures {info.get('load_failures')}")
    loaded = infos[f"splice server run, {args.modules} modules"]
    bare = median(times["bare Starlette + Hypercorn"])
    rows = [[name, median(v), min(v), max(v), ratio(median(v), bare), median(cpu[name])] for name, v in times.items()]
    for label, values in (("ping", start_ping), ("returned", start_return)):
        name = f"splice start, {args.modules} modules: {label}"
        rows.append([name, median(values), min(values), max(values), ratio(median(values), bare), "-"])
    for label, values in quick_times.items():
        name = f"splice start, quickstart: {label if label == 'returned' else label + ' up'}"
        rows.append([name, median(values), min(values), max(values), ratio(median(values), bare), "-"])
    print()
    print(table(["start to first ping (s)", "median", "min", "max", "ratio to bare", "CPU s"], rows))
    print(f"\n(the {args.modules}-module server reported {loaded.get('modules')} modules, {loaded.get('services')}")
    print(f"services; the figures include the Python interpreter's own start-up)\ntarget: under {TARGET_S:g} s")
    print_imports(imports, env)
    print()
    bare_figure = ("bare Starlette to ping", bare)
    loaded_case = f"splice server run, {args.modules} modules"
    summary(
        f"start, server run to ping ({args.modules} modules)", median(times[loaded_case]), "s", bare_figure, "<= 0.5 s"
    )
    bare_cpu = ("bare Starlette CPU until ping", median(cpu["bare Starlette + Hypercorn"]))
    summary(f"start, server run CPU until ping ({args.modules} modules)", median(cpu[loaded_case]), "s", bare_cpu)
    quick_returned = median(quick_times["returned"])
    summary("start, splice start of a quickstart cluster returned", quick_returned, "s", bare_figure, "<= 1.2 s")
    last = max(median(v) for name, v in quick_times.items() if name != "returned")
    summary("start, splice start of a quickstart cluster, every part up", last, "s", bare_figure)
    return 0


if __name__ == "__main__":
    run(main)
