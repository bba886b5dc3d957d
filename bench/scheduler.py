"""1,000 jobs due in the same second: how late does each run start?

Splice: a local cluster (one server, one scheduler, SQLite ODB) made by ``splice quickstart create``, a
trivial ``async def handle`` service deployed, and 1,000 one-time jobs created through the admin API, all
due at the same instant a few seconds ahead. A run's lateness is when the service started on the server
(``job_runs.started_us``) minus the instant it was due. Every round makes 1,000 new jobs.

Baseline: APScheduler 3 (``AsyncIOScheduler``, the scheduler most Python services embed), in a process of
its own, with 1,000 ``date`` jobs due at one instant, each an ``async def`` in that same process that notes
when it started. It has no ODB, no claim and no HTTP hop, so it is the floor of an embedded scheduler:
Splice's runs cross a process boundary and are claimed in the ODB first, so the ratio is conservative.
(An APScheduler job POSTing to a bare app through one httpx client was tried first: httpx's pool, not
APScheduler, made those calls seconds late, which measured nothing useful.)

Benchmarks are not tests: nothing here asserts a time. The issue's target: p99 under 50 ms on one server.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import Processes, create_cluster, machine, median, percentile, ratio, run, splice, table, workdir

SERVICE = textwrap.dedent(
    """
    from splice.server import Service

    class Tick(Service):
        name = "bench.tick"

        async def handle(self):
            self.response.payload = {"ok": True}
    """
)

APS_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from datetime import datetime, UTC
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    due_us, jobs = int(sys.argv[1]), int(sys.argv[2])
    started = []

    async def call():
        started.append(time.time_ns() // 1000)

    async def main():
        scheduler = AsyncIOScheduler(timezone=UTC)
        due = datetime.fromtimestamp(due_us / 1e6, UTC)
        for number in range(jobs):
            scheduler.add_job(call, "date", run_date=due, id=str(number), misfire_grace_time=60)
        scheduler.start()
        while len(started) < jobs and time.time() < due_us / 1e6 + 60:
            await asyncio.sleep(0.05)
        scheduler.shutdown(wait=False)
        print(json.dumps(started))

    asyncio.run(main())
    """
)


def _post(url: str, token: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _due(lead: float) -> int:
    """An instant ``lead`` seconds or more ahead, on a whole second (microseconds since the epoch)."""
    return (int(time.time() + lead) + 1) * 1_000_000


def splice_round(directory: Path, url: str, token: str, jobs: int, lead: float, number: int) -> list[float]:
    due_us = _due(lead)
    at = datetime.fromtimestamp(due_us / 1e6, UTC).isoformat()
    made = time.monotonic()
    for index in range(jobs):
        _post(f"{url}/splice/admin/jobs", token, {"name": f"r{number}-{index}", "service": "bench.tick", "at": at})
    creating = time.monotonic() - made
    if time.time() * 1e6 > due_us - 1e6:
        raise RuntimeError(f"creating {jobs} jobs took {creating:.1f} s: raise --lead")
    odb = sqlite3.connect(directory / "odb.sqlite", timeout=30)
    deadline = due_us / 1e6 + 60
    pattern = (f"r{number}-%",)
    query = "select started_us - slot_us from job_runs where job_name like ? and status = 'ok'"
    while True:
        late = [row[0] / 1000 for row in odb.execute(query, pattern)]
        if len(late) >= jobs or time.time() > deadline:
            break
        time.sleep(0.2)
    failed = odb.execute("select count(*) from job_runs where job_name like ? and status != 'ok'", pattern)
    not_ok = failed.fetchone()[0]
    odb.close()
    if not_ok or len(late) < jobs:
        print(f"  round {number}: {len(late)} ok of {jobs}, {not_ok} not ok", file=sys.stderr)
    return late


def aps_round(jobs: int, lead: float) -> list[float]:
    due_us = _due(lead)
    done = subprocess.run(
        [sys.executable, "-c", APS_SCRIPT, str(due_us), str(jobs)], capture_output=True, text=True, timeout=lead + 90
    )
    if done.returncode != 0:
        print(f"  APScheduler failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return []
    started = json.loads(done.stdout)
    if len(started) < jobs:
        print(f"  APScheduler: {len(started)} of {jobs} jobs started", file=sys.stderr)
    return [(us - due_us) / 1000 for us in started]


def _figures(values: list[float]) -> str:
    return f"{median(values):.1f}/{percentile(values, 99):.1f} ms" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lead", type=float, default=8.0, help="seconds between creating the jobs and their due time")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    try:
        import apscheduler  # noqa: F401
    except ImportError:
        print("APScheduler is missing: pip install 'apscheduler>=3.10,<4' (part of .[dev])", file=sys.stderr)
        return 1
    print(machine())
    rows = []
    splice_all: list[float] = []
    aps_all: list[float] = []
    with workdir(args.keep, "splice-bench-scheduler-") as parent, Processes() as procs:
        cluster = create_cluster(parent, "cluster", procs)
        splice("start", str(cluster.directory))
        module = {"path": "bench.py", "source": SERVICE}
        _post(f"{cluster.url}/splice/admin/deploy", cluster.token, {"modules": [module]})
        for number in range(args.rounds):  # interleaved, so both see the same machine
            late = splice_round(cluster.directory, cluster.url, cluster.token, args.jobs, args.lead, number)
            base = aps_round(args.jobs, args.lead)
            splice_all += late
            aps_all += base
            print(f"round {number + 1}: Splice p50/p99 {_figures(late)}, APScheduler {_figures(base)}", flush=True)
    for label, values in (("Splice scheduler", splice_all), ("APScheduler (in-process)", aps_all)):
        figures = [median(values), percentile(values, 99), max(values), min(values)] if values else ["-"] * 4
        rows.append([label, len(values), *figures])
    print(f"\n{args.jobs} jobs due in the same second, {args.rounds} rounds; lateness = start of the run - due")
    print(table(["", "runs", "p50 ms", "p99 ms", "max ms", "min ms"], rows))
    if splice_all and aps_all:
        p99 = percentile(splice_all, 99)
        print(f"\nSplice p99 / APScheduler p99: {ratio(p99, percentile(aps_all, 99)):.2f}")
        print(f"target p99 < 50 ms: {'met' if p99 < 50 else 'MISSED'} ({p99:.1f} ms)")
    return 0


if __name__ == "__main__":
    run(main)
