"""Start-up: from launching a server until its ping answers, with 100 deployed modules (one service each).

Cases, each repeated and interleaved (the median counts):

  bare Starlette          ``bench/_bare_app.py`` (Hypercorn, started the way a Splice server is) -> GET /ping
  splice server, 0 mods   ``python -m splice.server.cli server run DIR`` on an empty cluster -> GET /splice/ping
  splice server, 100 mods the same on the cluster holding 100 modules
  splice start, 100 mods  the ``splice start DIR`` command (CLI start-up, ODB check, launching the server)
                          -> first GET /splice/ping answered; the time the command itself returned is shown too

And what imports cost, each a fresh ``python -c`` (interpreter start-up included; ``python -c pass`` is the
baseline): ``import splice.server`` (what services, users' tests and the CLI import), pydantic's ``BaseModel``
alone, and the server's composition root (what ``server run`` imports before it can serve). ``--imports-only``
measures only these.

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
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
    machine,
    median,
    ratio,
    run,
    splice,
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


def time_process(
    procs: Processes, args: list[str], url: str, check: Cluster | None = None
) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    proc = procs.start(args)
    try:
        answered = wait_for(url, proc=proc, step=0.001)
        info = server_info(check) if check is not None else {}
    finally:
        procs.stop(proc)
    return answered - began, info


def time_splice_start(procs: Processes, cluster: Cluster) -> tuple[float, float]:
    args = [sys.executable, "-m", "splice.server.cli", "start", str(cluster.directory)]
    began = time.perf_counter()
    proc = procs.start(args)
    try:
        answered = wait_for(cluster.url + "/splice/ping", proc=None, step=0.001)
        proc.wait(60)
        returned = time.perf_counter()
        if proc.returncode != 0:
            raise RuntimeError(f"splice start exited {proc.returncode}")
    finally:
        procs.stop(proc)
        splice("stop", str(cluster.directory))
    return answered - began, returned - began


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
        imports: dict[str, list[float]] = {name: [] for name in IMPORTS}
        env = import_env(work / "pycache")
        measure_imports(1, env)
        start_ping: list[float] = []
        start_return: list[float] = []
        infos: dict[str, dict[str, Any]] = {}
        print(f"start: {args.repeat} starts per case, {args.modules} modules; {machine()}")
        for index in range(args.repeat):
            for name, (command, url, check) in cases.items():
                seconds, info = time_process(procs, command, url, check)
                times[name].append(seconds)
                infos[name] = info
            answered, returned = time_splice_start(procs, full)
            for name, values in measure_imports(3, env).items():
                imports[name] += values
            start_ping.append(answered)
            start_return.append(returned)
            print(f"  round {index + 1}: " + ", ".join(f"{v[-1]:.3f}" for v in times.values()), end="")
            print(f", {answered:.3f} / {returned:.3f} s", flush=True)

    for name, info in infos.items():
        if info and (info.get("load_failures") or info.get("modules") not in (0, args.modules)):
            print(f"warning: {name}: {info.get('modules')} modules, failures {info.get('load_failures')}")
    loaded = infos[f"splice server run, {args.modules} modules"]
    bare = median(times["bare Starlette + Hypercorn"])
    rows = [[name, median(v), min(v), max(v), ratio(median(v), bare)] for name, v in times.items()]
    for label, values in (("ping", start_ping), ("returned", start_return)):
        name = f"splice start, {args.modules} modules: {label}"
        rows.append([name, median(values), min(values), max(values), ratio(median(values), bare)])
    print()
    print(table(["start to first ping (s)", "median", "min", "max", "ratio to bare"], rows))
    print(f"\n(the {args.modules}-module server reported {loaded.get('modules')} modules, {loaded.get('services')}")
    print(f"services; the figures include the Python interpreter's own start-up)\ntarget: under {TARGET_S:g} s")
    print_imports(imports, env)
    return 0


if __name__ == "__main__":
    run(main)
