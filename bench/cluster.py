"""Cluster-wide hot deploy: a changed module sent to one server until all three servers answer with it.

Splice: a local cluster of three servers (SQLite ODB), once with servers notifying each other over HTTP
and once with the Redis bus (a redis-server of the benchmark's own on a free port). Each iteration sends
the module with the next number to ``POST /splice/admin/deploy`` of one server (round robin over the
three) and then asks every server's channel for the number; the figure is the time from sending the POST
until all three have answered the new number. The deploy call returns once every server confirmed, so
in practice the first ask already sees it. The pickup directory case writes the file into the
cluster's pickup directory instead and polls all three until they answer it (each on its own, 2 ms apart).
Each deploy's answer says where its time went (the server's ``timings``, each peer's line); the script prints
the p50 of every part per bus, and for a pickup save the watcher, the batch's parts and the rest.

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
    summary,
    table,
    workdir,
)
from deploy import SERVICE, uvicorn_reloads

TARGET_P50_MS = 15.0
TARGET_P99_MS = 40.0
MODULE_PATH = "bench_cluster/changing.py"


POLL_PAUSE = 0.002
"""Seconds between two asks of one server: asked back to back, the pollers took a core from the servers at work
(2 cores, 3 servers) and the figure measured the poller as much as the deploy."""


async def _answers(client: Any, path: str, value: int) -> None:
    while True:
        answer = await client.get(path)
        if answer.status_code == 200 and answer.json()["v"] == value:
            return
        await asyncio.sleep(POLL_PAUSE)


async def _all_answer(clients: list[Any], value: int, path: str = "/changing") -> float:
    """When every server answered ``value`` on ``path`` (each asked on its own, ``POLL_PAUSE`` apart)."""
    await asyncio.gather(*(_answers(c, path, value) for c in clients))
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
                results.append(_parts(done, began, answered, seen))
    finally:
        for client in admins + channels:
            await client.aclose()
    return results


def _parts(done: dict[str, Any], began: float, answered: float, seen: float) -> dict[str, Any]:
    """One deploy's figures and where its time went (the origin's timings, each peer's ack)."""
    peers = done["servers"][1:]
    timings = done["timings"]
    slowest = max(peers, key=lambda p: float(p.get("ms", 0)))
    return {
        "all_ms": (seen - began) * 1000,
        "answered_ms": (answered - began) * 1000,
        "local_ms": timings["total_ms"],
        "peer_ms": float(slowest.get("ms", 0)),
        "via": sorted({str(p.get("via")) for p in peers}),
        "parts": {
            "validate": timings.get("validate_ms"),
            "isolate": timings.get("isolate_ms"),
            "persist": timings.get("persist_ms"),
            "load": timings.get("load_ms"),
            "origin total": timings.get("total_ms"),
            "notify until last ack": timings.get("cluster_ms"),
            "slowest peer: read ODB": slowest.get("read_ms"),
            "slowest peer: load": slowest.get("load_ms"),
            "slowest peer: sync": slowest.get("sync_ms"),
            "slowest peer: bus both ways": float(slowest.get("ms", 0)) - float(slowest.get("sync_ms", 0)),
            "path total (server side)": timings.get("path_ms"),
            "HTTP request and answer": (answered - began) * 1000 - float(timings.get("path_ms") or 0),
            "channels asked after": (seen - answered) * 1000,
        },
    }


async def pickup_saves(pickup: Path, urls: list[str], count: int, token: str) -> list[dict[str, Any]]:
    import httpx

    channels = [httpx.AsyncClient(base_url=u, timeout=60) for u in urls]
    admin = httpx.AsyncClient(base_url=urls[0], headers={"Authorization": f"Bearer {token}"}, timeout=60)
    times = []
    try:
        target = pickup / "bench_pickup.py"
        for value in range(1000, 1000 + count):
            began, wall = time.perf_counter(), time.time()
            target.write_text(SERVICE.format(value=value).replace("bench.changing", "bench.pickup"))
            all_ms = (await _all_answer(channels, value, "/picked") - began) * 1000
            times.append({"all_ms": all_ms, "parts": await _pickup_parts(admin, wall, all_ms)})
            await asyncio.sleep(0.2)
    finally:
        for client in [*channels, admin]:
            await client.aclose()
    return times


async def _pickup_parts(admin: Any, wall: float, all_ms: float) -> dict[str, Any]:
    """Where a save's time went: the watcher (write until the batch began), the batch's parts, the rest."""
    from datetime import datetime

    status = (await admin.get("/splice/admin/pickup")).json()
    batch = next((d["last_batch"] for d in status["dirs"] if d.get("last_batch")), None)
    if batch is None or "timings" not in batch:
        return {}
    watch = (datetime.fromisoformat(batch["started_at"]).timestamp() - wall) * 1000
    timings = batch["timings"]
    return {
        "watcher (write until the batch began)": watch,
        "batch: read files": timings.get("read_ms"),
        "batch: catch up": timings.get("catch_up_ms"),
        "batch: deploy here": timings.get("deploy_ms"),
        "batch: notify until last ack": timings.get("cluster_ms"),
        "batch total": batch.get("total_ms"),
        "channels asked after": all_ms - watch - float(batch.get("total_ms") or 0),
    }


def run_case(work: Path, procs: Processes, label: str, extra: list[str], args: argparse.Namespace) -> dict[str, Any]:
    cluster = create_cluster(work, label, procs, 3, *extra)
    urls = [f"http://127.0.0.1:{cluster.port + i}" for i in range(3)]
    splice("start", str(cluster.directory))
    try:
        results = asyncio.run(cluster_deploys(urls, cluster.token, args.deploys, args.warmup))
        saves: list[dict[str, Any]] = []
        if args.pickup:
            splice(
                "channel", "create", "--cluster", str(cluster.directory), "--name", "picked", "--path", "/picked",
                "--service", "bench.pickup",
            )  # fmt: skip
            saves = asyncio.run(pickup_saves(cluster.directory / "pickup", urls, args.saves, cluster.token))
    finally:
        splice("stop", str(cluster.directory))
    return {"label": label, "results": results, "saves": saves}


def _breakdown(cases: list[dict[str, Any]]) -> str:
    """The p50 of every part of a deploy per bus, and of a pickup save (parts overlap: isolate and persist)."""
    rows: list[list[object]] = []
    for case in cases:
        for kind, runs in (("deploy", case["results"]), ("pickup", case["saves"])):
            names = list(dict.fromkeys(name for run in runs for name in run["parts"]))
            for name in names:
                values = [float(v) for run in runs if (v := run["parts"].get(name)) is not None]
                if values:
                    rows.append([f"{case['label']} {kind}: {name}", len(values), median(values)])
    return "where the time goes (p50, ms)\n" + table(["part", "n", "p50"], rows)


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
            rows.append(spread(f"{case['label']}: pickup save, all 3 answer", [s["all_ms"] for s in case["saves"]]))
    rows.append(spread("uvicorn --reload: new value served", reloads))
    print()
    print(table(["ms", "n", "p50", "p99", "min", "max"], rows))
    print()
    print(_breakdown(cases))
    print()
    for case in cases:
        values = [r["all_ms"] for r in case["results"]]
        vias = sorted({v for r in case["results"] for v in r["via"]})
        figures = f"p50 {median(values):.1f} ms, p99 {percentile(values, 99):.1f} ms"
        print(
            f"{case['label']} (acks via {', '.join(vias)}): {figures} (targets {TARGET_P50_MS:g} / {TARGET_P99_MS:g});"
            f" ratio to uvicorn --reload p50: {ratio(median(values), median(reloads)):.3f}"
        )
    reload = ("uvicorn --reload", median(reloads))
    for case in cases:
        values = [r["all_ms"] for r in case["results"]]
        label = case["label"]
        summary(
            f"cluster, {label}, deploy until all 3 answer, p50",
            median(values),
            "ms",
            reload,
            f"<= {TARGET_P50_MS:g} ms",
        )
        summary(
            f"cluster, {label}, deploy until all 3 answer, p99",
            percentile(values, 99),
            "ms",
            None,
            f"<= {TARGET_P99_MS:g} ms",
        )
        if case["saves"]:
            saves = [s["all_ms"] for s in case["saves"]]
            summary(f"cluster, {label}, pickup save until all 3 answer, p50", median(saves), "ms", reload, "<= 25 ms")
    return 0


if __name__ == "__main__":
    run(main)
