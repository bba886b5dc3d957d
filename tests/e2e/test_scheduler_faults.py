"""The scheduler under faults: the active scheduler killed with SIGKILL between claiming runs and sending them.

The services' own record (one JSON line per run, written by the service) is what counts: every slot of every
job in the window around the kill either ran exactly once or is counted as missed by the run after it (slots
that came while no scheduler was active are folded, never burst), and the runs claimed ahead and not yet sent
when the scheduler died ran too, sent by the scheduler that took over.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from splice.server.jobs.spec import from_us, now_us, to_us
from tests.conftest import alive, eventually, make_cluster, running, splice
from tests.e2e.test_scheduler import deploy_services, job, records, scheduler_states, slots_of

JOBS = ("tick-a", "tick-b", "tick-c")


def claimed_ahead(odb: Path, holder: str) -> set[tuple[str, int]]:
    """Runs ``holder`` claimed whose slot is still at least 80 ms away (so surely not sent yet)."""
    with sqlite3.connect(f"file:{odb}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute(
            "select job_name, slot_us from job_runs where slot_us > ? and scheduler like ?",
            (now_us() + 80_000, holder + ":%"),
        ).fetchall()
    return {(name, slot) for name, slot in rows}


def test_a_run_claimed_ahead_by_a_killed_scheduler_is_sent_by_the_next_one(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    made = make_cluster(tmp_path / "cluster", servers=2)
    splice("create", "scheduler", str(made.directory))
    with (made.directory / "cluster.toml").open("a") as config:
        config.write("\n[scheduler]\nlease_ttl = 1.5\n")
    with running(made) as cluster:
        states = eventually(
            lambda: (s := scheduler_states(cluster)) and sorted(s.values()) == ["active", "standby"] and s
        )
        assert isinstance(states, dict)
        active = next(name for name, state in states.items() if state == "active")
        standby = next(name for name in states if name != active)
        deploy_services(cluster)
        payload = json.dumps({"log": str(log)})
        for name in JOBS:
            job(cluster, "create", "--name", name, "--service", "jobs.record", "--interval", "1", "--payload", payload)
        eventually(lambda: all(len(slots_of(log, name)) >= 2 for name in JOBS), 20)

        # Kill it right after it claimed a slot ahead, before the slot came (so before it sent the run).
        pid = int((cluster.directory / active / "scheduler.pid").read_text())
        odb = cluster.directory / "odb.sqlite"
        deadline = time.monotonic() + 10
        while not (pending := claimed_ahead(odb, active)):
            assert time.monotonic() < deadline, "the active scheduler never claimed a slot ahead"
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: not alive(pid), 5)
        eventually(lambda: scheduler_states(cluster)[standby] == "active", 15)
        eventually(lambda: all(len(_by(log, name, standby)) >= 2 for name in JOBS), 20)
        with cluster.admin() as admin:
            history = {
                name: admin.get(f"/splice/admin/jobs/{name}/history", params={"limit": 1000}).json()["runs"]
                for name in JOBS
            }

    ran = {name: slots_of(log, name) for name in JOBS}
    doubled = {name: [s for s, n in Counter(slots).items() if n > 1] for name, slots in ran.items()}
    assert doubled == {name: [] for name in JOBS}, f"slots run twice: {doubled}"
    lost = [(name, slot) for name, slot in pending if _iso(slot) not in ran[name]]
    assert lost == [], f"runs claimed by the killed scheduler and never run: {lost}; history: {history}"
    for name, runs in history.items():
        runs = sorted(runs, key=lambda run: _us(run["slot"]))
        assert [r for r in runs if r["status"] not in ("ok", "interrupted", "claimed", "running")] == [], runs
        # Interrupted: sent by the killed scheduler, its outcome lost; it ran all the same (never sent twice).
        assert {r["slot"] for r in runs if r["status"] in ("ok", "interrupted")} <= set(ran[name]), runs
        # Every slot between the first and last run either ran or is counted missed by the next run.
        for before, after in itertools.pairwise(runs):
            gap = (_us(after["slot"]) - _us(before["slot"])) / 1e6
            assert round(gap) == after["missed"] + 1, (name, before, after)
    taken_over = [run for name, runs in history.items() for run in runs if (name, _us(run["slot"])) in pending]
    assert taken_over, history
    assert all(run["status"] == "ok" for run in taken_over), taken_over
    assert all(run["scheduler"].startswith(standby + ":") for run in taken_over), taken_over
    assert all(f"taken over: claimed by {active}:" in run["error"] for run in taken_over), taken_over


def _by(log: Path, job_name: str, scheduler: str) -> list[dict[str, Any]]:
    return [
        r
        for r in records(log)
        if r["scheduler"]["job"] == job_name and r["scheduler"]["scheduler"].startswith(scheduler + ":")
    ]


def _iso(slot_us: int) -> str:
    return from_us(slot_us).isoformat()


def _us(iso: str) -> int:
    return to_us(datetime.fromisoformat(iso))
