"""Memory: a Splice server's RSS idle and with 1,000 deployed services, beside a bare Starlette server.

Read from /proc/PID/status (VmRSS; VmHWM is the peak). Figures:

  bare Starlette idle        ``bench/_bare_app.py`` on Hypercorn, after a few requests
  splice idle                a fresh one-server cluster (SQLite) after a few requests
  splice + N services        after deploying MODULES modules x SERVICES services (default 100 x 10)
                             through the admin API, BATCH modules per call
  ... after 1 call each      after invoking every service once through the admin API
  ... after restart          ``splice stop`` + ``splice start``: the services loaded from the ODB at start

The server's helper process (``python -m splice.server.deploy._isolate_worker``, which imports candidate modules
in forked children during a deploy) is reported on its own lines. Benchmarks are not tests: nothing here
asserts a size.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from dataclasses import dataclass

from _common import (
    Cluster,
    Processes,
    bare_app_args,
    children,
    cmdline,
    create_cluster,
    free_port,
    machine,
    ping,
    proc_status,
    ratio,
    run,
    splice,
    summary,
    table,
    wait_for,
    workdir,
)

TARGET_IDLE_MIB = 80
TARGET_DELTA_MIB = 16  # issue 18: +1,000 services <= +16 MiB (it was < +60 before)
MIB = 1024


def module_source(index: int, services: int) -> str:
    parts = ["from splice.server import Service\n"]
    for number in range(services):
        parts.append(
            textwrap.dedent(
                f'''

                class Service{number:02d}(Service):
                    """Memory benchmark service {index}.{number}."""

                    name = "bench.memory.m{index:04d}.s{number:02d}"

                    class Input:
                        id: int
                        note: str = ""

                    async def handle(self):
                        self.response.payload = {{"id": self.request.input["id"], "service": {number}}}
                '''
            )
        )
    return "".join(parts)


def settle(url: str, requests: int = 20, pause: float = 1.0) -> None:
    for _ in range(requests):
        ping(url, 2.0)
    time.sleep(pause)


def worker_pid(server_pid: int, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children(server_pid):
            if "_isolate_worker" in cmdline(child):
                return child
        time.sleep(0.05)
    return None


@dataclass
class Sample:
    label: str
    rss: float
    hwm: float
    server: bool


def sample(label: str, pid: int | None, server: bool = True) -> Sample:
    if pid is None:
        return Sample(label, float("nan"), float("nan"), server)
    status = proc_status(pid)
    return Sample(label, status["VmRSS"] / MIB, status["VmHWM"] / MIB, server)


def deploy_all(cluster: Cluster, modules: int, services: int, batch: int) -> tuple[int, float]:
    import httpx

    headers = {"Authorization": f"Bearer {cluster.token}"}
    count = 0
    began = time.perf_counter()
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=300) as admin:
        for first in range(0, modules, batch):
            body = {
                "modules": [
                    {"path": f"bench_memory/m{i:04d}.py", "source": module_source(i, services)}
                    for i in range(first, min(modules, first + batch))
                ]
            }
            answer = admin.post("/splice/admin/deploy", json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"deploy answered {answer.status_code}: {answer.text[:500]}")
            count += sum(len(m["services"]) for m in answer.json()["modules"])
    return count, time.perf_counter() - began


def call_all(cluster: Cluster, modules: int, services: int) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {cluster.token}"}
    with httpx.Client(base_url=cluster.url, headers=headers, timeout=60) as admin:
        for index in range(modules):
            for number in range(services):
                name = f"bench.memory.m{index:04d}.s{number:02d}"
                answer = admin.post("/splice/admin/invoke", json={"service": name, "payload": {"id": index}})
                if answer.status_code != 200:
                    raise RuntimeError(f"invoke {name} answered {answer.status_code}: {answer.text[:300]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="Prints MiB and ratios to bare.")
    parser.add_argument("--modules", type=int, default=100, help="modules to deploy (default 100)")
    parser.add_argument("--services", type=int, default=10, help="services per module (default 10)")
    parser.add_argument("--batch", type=int, default=10, help="modules per deploy call (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    total = args.modules * args.services

    rows: list[Sample] = []
    with workdir(args.keep, "splice-bench-memory-") as work, Processes() as procs:
        port = free_port()
        bare = procs.start(bare_app_args(port))
        wait_for(f"http://127.0.0.1:{port}/ping", proc=bare)
        settle(f"http://127.0.0.1:{port}/ping")
        rows.append(sample("bare Starlette + Hypercorn, idle", bare.pid))
        procs.stop(bare)

        cluster = create_cluster(work, "cluster", procs)
        splice("start", str(cluster.directory))
        server = cluster.server_pid()
        worker = worker_pid(server)
        settle(cluster.url + "/splice/ping")
        rows.append(sample("splice server, idle", server))
        rows.append(sample("  isolation worker, idle", worker, server=False))

        deployed, seconds = deploy_all(cluster, args.modules, args.services, args.batch)
        settle(cluster.url + "/splice/ping")
        rows.append(sample(f"splice server, {deployed:,} services deployed", server))
        rows.append(sample("  isolation worker, after the deploys", worker_pid(server), server=False))
        call_all(cluster, args.modules, args.services)
        settle(cluster.url + "/splice/ping")
        rows.append(sample(f"splice server, {deployed:,} services, 1 call each", server))

        splice("stop", str(cluster.directory))
        splice("start", str(cluster.directory))
        server = cluster.server_pid()
        worker = worker_pid(server)
        settle(cluster.url + "/splice/ping")
        rows.append(sample(f"splice server, {deployed:,} services, after restart", server))
        rows.append(sample("  isolation worker, after restart", worker, server=False))
        splice("stop", str(cluster.directory))

    bare_rss, idle, loaded = rows[0].rss, rows[1].rss, rows[3].rss
    out = [
        [
            r.label,
            r.rss,
            r.hwm,
            r.rss - idle if r.label.startswith("splice") else "",
            ratio(r.rss, bare_rss) if r.server else "",
        ]
        for r in rows
    ]
    print(f"memory: {args.modules} modules x {args.services} services = {total:,} services, {args.batch} modules per")
    print(f"deploy call ({seconds:.1f} s for all); {machine()}\n")
    print(table(["process", "VmRSS MiB", "VmHWM MiB", "+ vs idle", "ratio to bare"], out))
    worker_rss = rows[2].rss
    print(f"\nidle: server {idle:.1f} MiB (target under {TARGET_IDLE_MIB}), ratio splice/bare {idle / bare_rss:.2f};")
    print(f"server + isolation worker {idle + worker_rss:.1f} MiB, ratio {(idle + worker_rss) / bare_rss:.2f}")
    each = (loaded - idle) * 1024 / total
    print(f"{total:,} services: +{loaded - idle:.1f} MiB (target under +{TARGET_DELTA_MIB}), {each:.1f} KiB each")
    print()
    summary(
        "memory, splice server idle RSS", idle, "MiB", ("bare Starlette idle", bare_rss), f"<= {TARGET_IDLE_MIB} MiB"
    )
    summary(f"memory, RSS growth with {total:,} services", loaded - idle, "MiB", None, f"<= +{TARGET_DELTA_MIB} MiB")
    return 0


if __name__ == "__main__":
    run(main)
