"""Cluster-wide hot deploy: a changed module sent to one server until all three servers answer with it.

Splice: a local cluster of three servers (SQLite ODB), once with servers notifying each other over HTTP
and once with the Redis bus (a redis-server of the benchmark's own on a free port). Each iteration sends
the module with the next number to ``POST /splice/admin/deploy`` of one server (round robin over the
three) and then asks every server's channel for the number; the figure is the time from sending the POST
until all three have answered the new number. The deploy call returns once every server confirmed, so
in practice the first ask already sees it. The pickup directory case writes the file into the
cluster's pickup directory instead and polls all three until they answer it.

Baseline: ``uvicorn --reload`` picking up the same change (one process; see ``bench/deploy.py``).
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from _common import (
    Processes,
    create_cluster,
    free_port,
    machine,
    median,
    percentile,
    ratio,
    run,
    splice,
    spread,
    table,
    workdir,
)
from deploy import SERVICE, uvicorn_reloads

TARGET_P50_MS = 30.0
TARGET_P99_MS = 100.0
MODULE_PATH = "bench_cluster/changing.py"


async def _all_answer(clients: list[Any], value: int) -> float:
    pending = list(clients)
    while pending:
        answers = await asyncio.gather(*(c.get("/changing") for c in pending))
        pending = [c for c, a in zip(pending, answers, strict=True) if a.status_code != 200 or a.json()["v"] != value]
    return time.perf_counter()


async def cluster_deploys(urls: list[str], token: str, count: int, warmup: int) -> list[dict[str, Any]]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    admins = [httpx.AsyncClient(base_url=u, headers=headers, timeout=60) for u in urls]
    channels = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
    results = []
    try:

        async def deploy(server: int, value: int) -> dict[str, Any]:
            body = {"modules": [{"path": MODULE_PATH, "source": SERVICE.format(value=value)}]}
            answer = await admins[server].post("/splice/admin/deploy", json=body)
            if answer.status_code != 200 or answer.json()["status"] != "deployed":
                raise RuntimeError(f"deploy answered {answer.status_code}: {answer.text[:800]}")
            return dict(answer.json())

        await deploy(0, 0)
        created = await admins[0].post(
            "/splice/admin/channels", json={"name": "changing", "path": "/changing", "service": "bench.changing"}
        )
        if created.status_code != 201:
            raise RuntimeError(f"channel create answered {created.status_code}: {created.text[:500]}")
        await _all_answer(channels, 0)
        for value in range(1, warmup + count + 1):
            began = time.perf_counter()
            done = await deploy(value % len(urls), value)
            answered = time.perf_counter()
            seen = await _all_answer(channels, value)
            if value > warmup:
                peers = done["servers"][1:]
                results.append(
                    {
                        "all_ms": (seen - began) * 1000,
                        "answered_ms": (answered - began) * 1000,
                        "local_ms": done["timings"]["total_ms"],
                        "peer_ms": max(float(p.get("ms", 0)) for p in peers),
                        "via": sorted({str(p.get("via")) for p in peers}),
                    }
                )
    finally:
        for client in admins + channels:
            await client.aclose()
    return results


async def pickup_saves(pickup: Path, urls: list[str], count: int) -> list[float]:
    import httpx

    channels = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
    times = []
    try:
        target = pickup / "bench_pickup.py"
        for value in range(1000, 1000 + count):
            began = time.perf_counter()
            target.write_text(SERVICE.format(value=value).replace("bench.changing", "bench.pickup"))
            pending = list(channels)
            while pending:
                answers = await asyncio.gather(*(c.get("/picked") for c in pending))
                pending = [
                    c for c, a in zip(pending, answers, strict=True) if a.status_code != 200 or a.json()["v"] != value
                ]
            times.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.2)
    finally:
        for client in channels:
            await client.aclose()
    return times


def run_case(work: Path, procs: Processes, label: str, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cluster = create_cluster(work, label, procs, 3, *extra)
    urls = [f"http://127.0.0.1:{cluster.port + i}" for i in range(3)]
    splice("start", str(cluster.directory))
    try:
        results = asyncio.run(cluster_deploys(urls, cluster.token, args.deploys, args.warmup))
        saves: list[float] = []
        if args.pickup:
            splice(
                "channel", "create", "--cluster", str(cluster.directory), "--name", "picked", "--path", "/picked",
                "--service", "bench.pickup",
            )  # fmt: skip
            saves = asyncio.run(pickup_saves(cluster.directory / "pickup", urls, args.saves))
    finally:
        splice("stop", str(cluster.directory))
    return {"label": label, "results": results, "saves": saves}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=50, help="measured deploys per bus (default 50)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reloads", type=int, default=10, help="uvicorn --reload iterations (default 10)")
    parser.add_argument("--saves", type=int, default=15, help="pickup directory saves (default 15)")
    parser.add_argument("--no-pickup", dest="pickup", action="store_false", help="skip the pickup directory case")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed: only the HTTP bus is measured")
    with workdir(args.keep, "splice-bench-cluster-") as work, Processes() as procs:
        print(f"cluster: 3 servers, {args.deploys} deploys per bus after {args.warmup} warm-up; {machine()}")
        cases = [run_case(work, procs, "http-bus", [], args)]
        if shutil.which("redis-server"):
            port = free_port()
            redis = procs.start(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=work,
                stdout=subprocess.DEVNULL,
            )
            time.sleep(0.3)
            if redis.poll() is None:
                cases.append(run_case(work, procs, "redis-bus", ["--redis", f"redis://127.0.0.1:{port}/0"], args))
        reloads = uvicorn_reloads(work, procs, args.reloads, 0.001)

    rows = []
    for case in cases:
        results = case["results"]
        rows.append(spread(f"{case['label']}: all 3 answer", [r["all_ms"] for r in results]))
        rows.append(spread(f"{case['label']}: deploy call answered", [r["answered_ms"] for r in results]))
        rows.append(spread(f"{case['label']}: origin's own deploy", [r["local_ms"] for r in results]))
        rows.append(spread(f"{case['label']}: slowest peer ack", [r["peer_ms"] for r in results]))
        if case["saves"]:
            rows.append(spread(f"{case['label']}: pickup save, all 3 answer", case["saves"]))
    rows.append(spread("uvicorn --reload: new value served", reloads))
    print()
    print(table(["ms", "n", "p50", "p99", "min", "max"], rows))
    print()
    for case in cases:
        values = [r["all_ms"] for r in case["results"]]
        vias = sorted({v for r in case["results"] for v in r["via"]})
        figures = f"p50 {median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms"
        print(
            f"{case['label']} (acks via {', '.join(vias)}): {figures} (targets {TARGET_P50_MS:g} / {TARGET_P99_MS:g});"
            f" ratio to uvicorn --reload p50: {ratio(median(values), median(reloads)):.3f}"
        )
    return 0


if __name__ == "__main__":
    run(main)
