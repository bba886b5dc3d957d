"""What debugging costs a server, and what a paused breakpoint holds up.

A quickstart cluster (one server) with a plain ``def handle`` and an ``async def handle`` service behind
REST channels. Latency of ``GET /splice/ping`` (200 calls on one keep-alive connection) and of a channel
call is measured: with debugging off (the baseline, in the same run), with a debugpy attach point
listening, with a DAP client attached (the generated configuration: ``stopAllThreadsOnSuspend: false``)
and a breakpoint set on a line that is not run, while the ``def handle`` service is paused at a
breakpoint, and while the ``async def handle`` one is (with debugging on, async services run on a loop of their
own in a worker thread, so pings and another async service go on answering: today 0 of 5 pings were answered).
The DAP client is the tests' own (``tests/dap.py``).

Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import textwrap
import time
from typing import Any

import httpx
from _common import (
    REPO,
    Processes,
    create_cluster,
    free_port,
    machine,
    median,
    percentile,
    run,
    splice,
    summary,
    table,
    workdir,
)

sys.path.insert(0, str(REPO))
from tests.dap import DapClient, attached

SOURCE = textwrap.dedent(
    """
    from splice.server import Service


    class Plain(Service):
        name = "bench.plain"

        def handle(self):
            value = 1
            self.response.payload = {"value": value}


    class Loop(Service):
        name = "bench.loop"

        async def handle(self):
            value = 2
            self.response.payload = {"value": value}


    def never_called():
        return 3


    class Other(Service):
        name = "bench.other"

        async def handle(self):
            self.response.payload = {"other": True}
    """
)
PLAIN_LINE, LOOP_LINE, NEVER_LINE = 9, 17, 21


def latencies(client: httpx.Client, path: str, count: int) -> list[float]:
    out = []
    for _ in range(count):
        began = time.perf_counter()
        try:
            client.get(path, timeout=1.0)
        except httpx.TimeoutException:
            out.append(float("inf"))
            continue
        out.append((time.perf_counter() - began) * 1000)
    return out


def row(label: str, values: list[float]) -> list[object]:
    answered = [v for v in values if v != float("inf")]
    if not answered:
        return [label, len(values), 0, "-", "-"]
    return [label, len(values), len(answered), median(answered), percentile(answered, 99)]


def paused(
    client: DapClient, url: str, path: str, http: httpx.Client, count: int, during: tuple[str, ...] = ("/splice/ping",)
) -> list[list[float]]:
    """Call ``path`` so it stops at the breakpoint, measure each of ``during`` meanwhile, then resume."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        call = pool.submit(httpx.get, url + path, timeout=120)
        stopped = client.event("stopped", timeout=30)
        measured = [latencies(http, other, count) for other in during]
        client.resume(stopped["threadId"])
        call.result(timeout=60)
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(machine())
    rows: list[list[object]] = []
    with workdir(args.keep, "splice-bench-debug-") as parent, Processes() as procs:
        cluster = create_cluster(parent, "cluster", procs)
        project = parent / "project"
        (project / "bench").mkdir(parents=True)
        file = project / "bench" / "debugged.py"
        file.write_text(SOURCE)
        with (cluster.directory / "cluster.toml").open("a") as config:
            config.write(f"\n[debug]\nport = {free_port()}\n")  # the default may be another cluster's
        splice("start", str(cluster.directory))
        splice("deploy", str(file), "--cluster", str(cluster.directory), "--root", str(project))
        channels = (("plain", "/plain", "bench.plain"), ("loop", "/loop", "bench.loop"))
        channels += (("other", "/other", "bench.other"),)
        for name, path, service in channels:
            splice("channel", "create", "--cluster", str(cluster.directory), "--name", name, "--path", path,
                   "--service", service)  # fmt: skip
        with httpx.Client(base_url=cluster.url) as http:
            latencies(http, "/plain", 50)
            rows.append(row("debugging off: ping", latencies(http, "/splice/ping", args.calls)))
            rows.append(row("debugging off: def handle", latencies(http, "/plain", args.calls)))
            splice("debug", "enable", str(cluster.directory))
            info: dict[str, Any] = json.loads(splice("debug", "info", str(cluster.directory), "--json").stdout)
            point = info["attach_points"][0]
            rows.append(row("listening, nobody attached: def handle", latencies(http, "/plain", args.calls)))
            mapping = [{"localRoot": str(project), "remoteRoot": point["remote_root"]}]
            options = {"stopAllThreadsOnSuspend": False}
            with attached(point["host"], point["port"], mapping, {str(file): [NEVER_LINE]}, options) as (dap, _):
                rows.append(row("attached, breakpoint elsewhere: ping", latencies(http, "/splice/ping", args.calls)))
                rows.append(row("attached, breakpoint elsewhere: def handle", latencies(http, "/plain", args.calls)))
                rows.append(row("attached: async def handle", latencies(http, "/loop", args.calls)))
                dap.set_breakpoints(str(file), [PLAIN_LINE, LOOP_LINE])
                (pings,) = paused(dap, cluster.url, "/plain", http, args.calls)
                rows.append(row("paused in def handle: ping", pings))
                pings, other = paused(dap, cluster.url, "/loop", http, 5, ("/splice/ping", "/other"))
                rows.append(row("paused in async def handle: ping", pings))
                rows.append(row("paused in async def handle: another async def handle", other))
    print(f"\n{args.calls} calls each on one keep-alive connection (1 s timeout); ms")
    print(table(["", "calls", "answered", "p50 ms", "p99 ms"], rows))
    answered = sum(1 for value in pings if value != float("inf"))
    print(f"\npings answered while an async def handle was paused: {answered} of {len(pings)} (0 of 5 before)")
    summary(f"debug, pings answered (of {len(pings)}) while an async def handle is paused", answered, "pings")
    return 0


if __name__ == "__main__":
    run(main)
