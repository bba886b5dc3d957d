"""Hot deploy: from a changed module being sent until the new code answers, beside ``uvicorn --reload``.

Splice: a one-server cluster on SQLite with a channel ``/changing`` to a service whose answer carries a
number. Each iteration sends the module with the next number to ``POST /splice/admin/deploy`` over one
persistent connection (no CLI start-up is measured) while a second persistent connection polls the
channel back to back; the figure is the time from sending the POST until the channel first answers the
new number. Also printed: when the deploy call itself answered, and the server's own breakdown
(``timings`` of the deploy answer).

Baseline: ``uvicorn --reload`` with its default reload settings serving a Starlette app from a file;
each iteration rewrites the file with the next number and polls until it is served.
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
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
    wait_for,
    workdir,
)

TARGET_P50_MS = 20.0
MODULE_PATH = "bench_deploy/changing.py"
SERVICE = textwrap.dedent(
    """
    from splice.server import Service

    VALUE = {value}


    class Changing(Service):
        name = "bench.changing"

        async def handle(self):
            self.response.payload = {{"v": VALUE}}
    """
).lstrip()
UVICORN_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    VALUE = {value}


    async def changing(request):
        return JSONResponse({{"v": VALUE}})


    app = Starlette(routes=[Route("/changing", changing)])
    """
).lstrip()


# -- Splice ------------------------------------------------------------------------------------------------


async def _poll(client: Any, url: str, value: int, poll_step: float) -> float:
    """Poll ``url`` on one keep-alive connection until it answers ``{"v": value}``; returns that moment."""
    while True:
        answer = await client.get(url)
        if answer.status_code == 200 and answer.json().get("v") == value:
            return time.perf_counter()
        if poll_step:
            await asyncio.sleep(poll_step)


OTHER = textwrap.dedent(
    """
    from splice.server import Service


    class Other(Service):
        name = "bench.other.m{index:04d}"

        def handle(self):
            self.response.payload = {index}
    """
).lstrip()


async def splice_deploys(
    url: str, token: str, count: int, warmup: int, poll: str, poll_step: float, preload: int
) -> list[dict[str, Any]]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=1)
    results: list[dict[str, Any]] = []
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60, limits=limits) as admin,
        httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as channel,
    ):

        async def deploy(modules: list[dict[str, str]]) -> dict[str, Any]:
            answer = await admin.post("/splice/admin/deploy", json={"modules": modules})
            if answer.status_code != 200:
                raise RuntimeError(f"deploy answered {answer.status_code}: {answer.text[:500]}")
            return dict(answer.json())

        def changed(value: int) -> list[dict[str, str]]:
            return [{"path": MODULE_PATH, "source": SERVICE.format(value=value)}]

        for first in range(0, preload, 50):
            batch = range(first, min(preload, first + 50))
            await deploy([{"path": f"bench_other/m{i:04d}.py", "source": OTHER.format(index=i)} for i in batch])
        await deploy(changed(0))
        created = await admin.post(
            "/splice/admin/channels",
            json={"name": "changing", "path": "/changing", "service": "bench.changing", "methods": ["GET"]},
        )
        if created.status_code != 201:
            raise RuntimeError(f"channel create answered {created.status_code}: {created.text[:500]}")
        await _poll(channel, "/changing", 0, 0)
        for value in range(1, warmup + count + 1):
            if poll == "during":
                poller = asyncio.create_task(_poll(channel, "/changing", value, poll_step))
                await asyncio.sleep(0)
                began = time.perf_counter()
                done = await deploy(changed(value))
                answered = time.perf_counter()
                seen = await poller
            else:
                began = time.perf_counter()
                done = await deploy(changed(value))
                answered = time.perf_counter()
                seen = await _poll(channel, "/changing", value, poll_step)
            if value > warmup:
                results.append(
                    {
                        "visible_ms": (seen - began) * 1000,
                        "answered_ms": (answered - began) * 1000,
                        "timings": done["timings"],
                    }
                )
    return results


# -- uvicorn --reload ----------------------------------------------------------------------------------------


def uvicorn_reloads(work: Path, procs: Processes, count: int, poll_step: float) -> list[float]:
    import httpx

    app_dir = work / "uvicorn-app"
    app_dir.mkdir()
    app_file = app_dir / "reloaded_app.py"
    app_file.write_text(UVICORN_APP.format(value=0), encoding="utf-8")
    port = free_port()
    proc = procs.start(
        [sys.executable, "-m", "uvicorn", "reloaded_app:app", "--reload", "--host", "127.0.0.1", "--port", str(port)],
        cwd=app_dir,
    )
    url = f"http://127.0.0.1:{port}/changing"
    wait_for(url, proc=proc)
    times = []
    try:
        with httpx.Client(timeout=5) as client:
            time.sleep(0.5)  # let the reloader's watcher settle before the first change
            for value in range(1, count + 1):
                began = time.perf_counter()
                app_file.write_text(UVICORN_APP.format(value=value), encoding="utf-8")
                while True:
                    try:
                        answer = client.get(url)
                        if answer.status_code == 200 and answer.json().get("v") == value:
                            break
                    except httpx.HTTPError:
                        pass
                    time.sleep(poll_step)
                times.append((time.perf_counter() - began) * 1000)
                time.sleep(0.3)  # a pause, as between saves; keeps each change its own reload
    finally:
        procs.stop(proc)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="Prints p50/p99 in ms and the uvicorn/Splice ratio."
    )
    parser.add_argument("--deploys", type=int, default=50, help="measured Splice deploys (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="Splice deploys before measuring (default 3)")
    parser.add_argument("--reloads", type=int, default=15, help="uvicorn --reload iterations (default 15)")
    parser.add_argument(
        "--poll",
        choices=["during", "after"],
        default="during",
        help="poll the channel while the deploy call runs (default) or only once it answered",
    )
    parser.add_argument("--poll-step", type=float, default=0.0, help="seconds between Splice polls (default 0)")
    parser.add_argument("--preload", type=int, default=0, help="other modules deployed before measuring (default 0)")
    parser.add_argument("--no-uvicorn", action="store_true", help="skip the uvicorn --reload baseline")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    with workdir(args.keep, "splice-bench-deploy-") as work, Processes() as procs:
        cluster = create_cluster(work, "cluster", procs)
        splice("start", str(cluster.directory))
        print(f"deploy: {args.deploys} Splice deploys (after {args.warmup} warm-up), {args.reloads} uvicorn reloads")
        print(f"{args.preload} other modules deployed; polling {args.poll} the deploy call; {machine()}")
        results = asyncio.run(
            splice_deploys(
                cluster.url, cluster.token, args.deploys, args.warmup, args.poll, args.poll_step, args.preload
            )
        )
        splice("stop", str(cluster.directory))
        reloads = [] if args.no_uvicorn else uvicorn_reloads(work, procs, args.reloads, 0.001)

    visible = [r["visible_ms"] for r in results]
    answered = [r["answered_ms"] for r in results]
    rows = [spread("splice: new value served", visible), spread("splice: deploy call answered", answered)]
    if reloads:
        rows.append(spread("uvicorn --reload: new value served", reloads))
    print()
    print(table(["ms", "n", "p50", "p99", "min", "max"], rows))
    print()
    keys = list(results[0]["timings"])
    per_key = {key: [r["timings"][key] for r in results] for key in keys}
    breakdown = [[key, median(values), percentile(values, 99)] for key, values in per_key.items()]
    print(table(["server timings (ms)", "p50", "p99"], breakdown))
    print()
    if reloads:
        p50 = ratio(median(visible), median(reloads))
        print(f"ratio splice/uvicorn p50: {p50:.3f}  (uvicorn --reload takes {1 / p50:.0f}x as long)")
        print(f"ratio splice/uvicorn p99: {ratio(percentile(visible, 99), percentile(reloads, 99)):.3f}")
    print(f"target: Splice p50 under {TARGET_P50_MS:g} ms (here {median(visible):.1f} ms)")
    reload = ("uvicorn --reload", median(reloads)) if reloads else None
    summary("deploy, one server, new value served, p50", median(visible), "ms", reload)
    return 0


if __name__ == "__main__":
    run(main)
