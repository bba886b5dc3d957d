"""The scheduler as a user meets it: a quickstart cluster, jobs made with ``splice job`` and by a service, runs
seen by the services themselves, and the active scheduler killed with SIGKILL.

Every service run appends one JSON line to a file named in its payload (what ``self.request.scheduler`` said,
which server ran it, its cid): the services' own record, independent of the scheduler's history, is what
proves that no slot ran twice.
"""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from splice.server.jobs.spec import to_us
from tests.conftest import Cluster, alive, eventually, make_cluster, running, splice

SERVICES = textwrap.dedent(
    """
    import json
    from splice.server import Service

    class Record(Service):
        name = "jobs.record"

        def handle(self):
            line = {"scheduler": self.request.scheduler, "server": self.server, "cid": self.cid,
                    "payload": self.request.payload}
            with open(self.request.payload["log"], "a") as handle:
                handle.write(json.dumps(line) + "\\n")

    class Signup(Service):
        name = "jobs.signup"

        def handle(self):
            account = self.request.payload["account"]
            payload = {"log": self.request.payload["log"], "clean": account}
            job = self.schedule.create(f"cleanup-{account}", "jobs.record", in_=0.5, payload=payload)
            self.response.payload = {"job": job["name"], "origin": job["origin"]}

    class Flaky(Service):
        name = "jobs.flaky"

        def handle(self):
            with open(self.request.payload["log"], "a") as handle:
                handle.write(json.dumps({"attempt": self.request.scheduler["attempt"]}) + "\\n")
            raise RuntimeError("the partner system is down")
    """
)


def deploy_services(cluster: Cluster) -> None:
    with cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "jobs.py", "source": SERVICES}]})
    assert answer.status_code == 200, answer.text


def records(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def slots_of(log: Path, job: str) -> list[str]:
    return [r["scheduler"]["slot"] for r in records(log) if r["scheduler"] and r["scheduler"]["job"] == job]


def job(cluster: Cluster, *args: str, check: bool = True) -> Any:
    return splice("job", *args, "--cluster", str(cluster.directory), check=check)


def scheduler_states(cluster: Cluster) -> dict[str, str]:
    status = json.loads(splice("status", str(cluster.directory), "--json", check=False).stdout)
    return {s["name"]: s["state"] for s in status["schedulers"]}


def test_interval_cron_and_service_made_jobs_run_on_a_quickstart_cluster(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    with running(make_cluster(tmp_path / "cluster", servers=2)) as cluster:
        assert scheduler_states(cluster) == {"scheduler1": "active"}
        deploy_services(cluster)
        payload = json.dumps({"log": str(log)})
        made = job(cluster, "create", "--name", "minutely", "--service", "jobs.record", "--cron", "* * * * *")
        assert "cron '* * * * *' (UTC)" in made.stdout
        job(
            cluster,
            "create",
            "--name",
            "every-second",
            "--service",
            "jobs.record",
            "--interval",
            "1",
            "--payload",
            payload,
        )
        with cluster.admin() as admin:
            answer = admin.post(
                "/splice/admin/invoke", json={"service": "jobs.signup", "payload": {"account": 7, "log": str(log)}}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["payload"] == {"job": "cleanup-7", "origin": "service:jobs.signup"}
            admin.patch("/splice/admin/jobs/minutely", json={"payload": {"log": str(log)}}).raise_for_status()

        eventually(lambda: len(slots_of(log, "every-second")) >= 3, 20)
        eventually(lambda: slots_of(log, "cleanup-7"), 10)
        seconds = slots_of(log, "every-second")
        assert len(set(seconds)) == len(seconds)
        assert {r["server"] for r in records(log) if r["scheduler"]["job"] == "every-second"} <= {"server1", "server2"}
        cleanup = [r for r in records(log) if r["scheduler"]["job"] == "cleanup-7"]
        assert len(cleanup) == 1
        assert cleanup[0]["payload"]["clean"] == 7
        assert cleanup[0]["scheduler"]["kind"] == "scheduled"
        assert cleanup[0]["scheduler"]["run"].endswith(
            ":" + str(to_us(datetime.fromisoformat(cleanup[0]["scheduler"]["slot"])))
        )

        history = job(cluster, "history", "every-second").stdout
        assert " ok " in history
        assert "ms late" in history
        listed = job(cluster, "list").stdout
        assert "cleanup-7  jobs.record  once at" in listed
        assert "next -" in listed.split("cleanup-7")[1].splitlines()[0]

        # The cron job: its first slot is the next whole minute, at most a minute away.
        eventually(lambda: slots_of(log, "minutely"), 65)
        (slot,) = slots_of(log, "minutely")
        assert slot.endswith(":00+00:00")
        assert job(cluster, "show", "minutely").stdout.count("cron '* * * * *'") == 1

    after = records(log)
    time.sleep(1.5)
    assert records(log) == after  # stopped with the cluster: nothing runs any more


def test_killing_the_active_scheduler_hands_over_without_running_a_slot_twice(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    made = make_cluster(tmp_path / "cluster", servers=2)
    added = splice("create", "scheduler", str(made.directory))
    assert "added scheduler scheduler2" in added.stdout
    with running(made) as cluster:
        states = eventually(
            lambda: (s := scheduler_states(cluster)) and sorted(s.values()) == ["active", "standby"] and s
        )
        assert isinstance(states, dict)
        active = next(name for name, state in states.items() if state == "active")
        standby = next(name for name in states if name != active)
        deploy_services(cluster)
        payload = json.dumps({"log": str(log)})
        job(cluster, "create", "--name", "fast", "--service", "jobs.record", "--interval", "0.2", "--payload", payload)
        eventually(lambda: len(slots_of(log, "fast")) >= 5, 20)

        pid = int((cluster.directory / active / "scheduler.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: not alive(pid), 5)
        killed_at = len(slots_of(log, "fast"))
        eventually(lambda: scheduler_states(cluster)[standby] == "active", 15)
        eventually(lambda: len(slots_of(log, "fast")) >= killed_at + 10, 20)

        slots = slots_of(log, "fast")
        repeated = [slot for slot, count in Counter(slots).items() if count > 1]
        assert repeated == [], f"slots run twice: {repeated}"
        holders = [r["scheduler"]["scheduler"].split(":")[0] for r in records(log)]
        assert holders[0] == active
        assert holders[-1] == standby
        with cluster.admin() as admin:
            listed = admin.get("/splice/admin/jobs").json()
            history = admin.get("/splice/admin/jobs/fast/history", params={"limit": 1000}).json()["runs"]
        assert listed["scheduler"]["name"].startswith(standby + ":")
        assert len({run["slot"] for run in history}) == len(history)
        # Slots the scheduler never started while nobody was active are folded into the first run after.
        assert any(run["missed"] > 0 for run in history)
        # Read the log again: a run may have finished between the first read and the history (a service writes
        # its line before its run is recorded ok, so every ok run of the history is in a log read after it).
        assert {run["slot"] for run in history if run["status"] == "ok"} <= set(slots_of(log, "fast"))


def test_runs_go_to_live_servers_and_a_killed_one_costs_no_run(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    with running(make_cluster(tmp_path / "cluster", servers=2)) as cluster:
        deploy_services(cluster)
        payload = json.dumps({"log": str(log)})
        job(
            cluster, "create", "--name", "spread", "--service", "jobs.record", "--interval", "0.2", "--payload", payload
        )
        eventually(lambda: {r["server"] for r in records(log)} == {"server1", "server2"}, 20)
        pid = int((cluster.directory / "server2" / "server.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        eventually(lambda: not alive(pid), 5)
        killed_at = len(records(log))
        time.sleep(3)  # server2 still counts as live in the ODB for a few seconds: the scheduler must notice
        after = records(log)[killed_at:]
        slots = {r["scheduler"]["slot"] for r in after}

        def settled() -> list[dict[str, Any]]:
            with cluster.admin() as admin:
                runs = admin.get("/splice/admin/jobs/spread/history", params={"limit": 1000}).json()["runs"]
            later: list[dict[str, Any]] = [run for run in runs if run["slot"] in slots]
            return later if all(run["status"] != "running" for run in later) else []

        later = eventually(settled, 10)
    assert len(after) >= 10
    assert {r["server"] for r in after} == {"server1"}
    assert isinstance(later, list)
    assert {run["status"] for run in later} == {"ok"}  # a refused connection went to the other server at once
    assert {run["server"] for run in later} == {"server1"}


def test_a_failing_run_is_retried_with_backoff_and_recorded_with_its_error(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "flaky.jsonl"
    deploy_services(cluster)
    created = job(
        cluster, "create", "--name", "flaky", "--service", "jobs.flaky", "--in", "0",
        "--retries", "2", "--backoff", "0.1", "--payload", json.dumps({"log": str(log)}),
    )  # fmt: skip
    assert "next run" in created.stdout

    def finished() -> list[dict[str, Any]]:
        with cluster.admin() as admin:
            runs: list[dict[str, Any]] = admin.get("/splice/admin/jobs/flaky/history").json()["runs"]
        return [r for r in runs if r["status"] == "failed"]

    (run,) = eventually(finished, 20)  # type: ignore[misc]
    assert run["attempts"] == 3
    assert "RuntimeError: the partner system is down" in run["error"]
    assert [r["attempt"] for r in records(log)] == [1, 2, 3]
    history = job(cluster, "history", "flaky").stdout
    assert "failed" in history
    assert "(attempt 3)" in history
    assert "the partner system is down" in history


def test_missed_slots_run_once_or_are_skipped_as_each_job_says(tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    made = make_cluster(tmp_path / "cluster")
    with (made.directory / "cluster.toml").open("a") as config:
        config.write("\n[scheduler]\nmisfire_grace = 0.5\n")
    with running(made) as cluster:
        deploy_services(cluster)
        payload = json.dumps({"log": str(log)})
        job(
            cluster,
            "create",
            "--name",
            "catch-up",
            "--service",
            "jobs.record",
            "--interval",
            "0.5",
            "--payload",
            payload,
        )
        eventually(lambda: slots_of(log, "catch-up"), 15)
        pid = int((cluster.directory / "scheduler1" / "scheduler.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        eventually(lambda: not alive(pid), 10)
        before = len(slots_of(log, "catch-up"))
        for name, policy in (("once-late", "run_once"), ("once-skipped", "skip")):
            job(cluster, "create", "--name", name, "--service", "jobs.record", "--in", "0.5",
                "--misfire", policy, "--payload", payload)  # fmt: skip
        time.sleep(3)  # six slots of the interval job pass with no scheduler, and the one-time jobs are 2.5 s late
        splice("start", str(cluster.directory))
        eventually(lambda: len(slots_of(log, "catch-up")) >= before + 3, 15)
        eventually(lambda: slots_of(log, "once-late"), 10)
        with cluster.admin() as admin:
            catch_up = admin.get("/splice/admin/jobs/catch-up/history", params={"limit": 100}).json()["runs"]
            late = admin.get("/splice/admin/jobs/once-late/history").json()["runs"]
            skipped = admin.get("/splice/admin/jobs/once-skipped/history").json()["runs"]
    # The interval job: the missed slots were folded into one run, which knows how many it stands for.
    recovered = [r for r in catch_up if r["missed"] >= 4]
    assert len(recovered) == 1
    assert recovered[0]["status"] == "ok"
    assert len(slots_of(log, "catch-up")) - before < 6  # never a burst of every missed slot
    # run_once: the late slot ran, once, late; skip: it was recorded as skipped with the reason, never run.
    assert [(r["status"], r["late_ms"] > 2000) for r in late] == [("ok", True)]
    assert len(slots_of(log, "once-late")) == 1
    assert [r["status"] for r in skipped] == ["skipped"]
    assert "misfire policy skip" in skipped[0]["error"]
    assert slots_of(log, "once-skipped") == []


def test_job_commands_manage_a_job_and_refuse_bad_input_in_one_line(cluster: Cluster, tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    deploy_services(cluster)
    bad = job(cluster, "create", "--name", "x", "--service", "jobs.record", "--cron", "61 * * * *", check=False)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1
    assert "cron.minute" in bad.stderr
    assert "61" in bad.stderr
    assert "Traceback" not in bad.stderr
    payload = json.dumps({"log": str(log)})
    job(cluster, "create", "--name", "hourly", "--service", "jobs.record", "--cron", "0 * * * *", "--payload", payload)
    duplicate = job(cluster, "create", "--name", "hourly", "--service", "jobs.record", "--interval", "5", check=False)
    assert duplicate.returncode == 1
    assert "exists already" in duplicate.stderr
    unknown = job(cluster, "create", "--name", "later", "--service", "jobs.nobody", "--at", "2030-01-01T00:00:00Z")
    assert "warning: no service named 'jobs.nobody'" in unknown.stderr

    assert "hourly will run now" in job(cluster, "run-now", "hourly").stdout
    (_manual,) = eventually(lambda: slots_of(log, "hourly"), 10)  # type: ignore[misc]
    assert [r["scheduler"]["kind"] for r in records(log)] == ["manual"]
    assert "paused" in job(cluster, "pause", "hourly").stdout
    assert "(paused)" in job(cluster, "show", "hourly").stdout
    resumed = job(cluster, "resume", "hourly").stdout
    assert "resumed; next run: " in resumed
    assert ":00:00+00:00" in resumed
    assert "deleted job hourly" in job(cluster, "delete", "hourly").stdout
    gone = job(cluster, "show", "hourly", check=False)
    assert gone.returncode == 1
    assert "no job named 'hourly'" in gone.stderr
    listed = json.loads(job(cluster, "list", "--json").stdout)
    assert [j["name"] for j in listed["jobs"]] == ["later"]
    assert listed["scheduler"]["name"].startswith("scheduler1:")


def test_the_scheduler_refuses_to_start_with_a_name_the_cluster_does_not_have(cluster: Cluster) -> None:
    result = splice("scheduler", "run", str(cluster.directory), "--name", "nobody", check=False)
    assert result.returncode == 1
    assert "no scheduler named 'nobody' (known: scheduler1)" in result.stderr
    assert "Traceback" not in result.stderr
    assert httpx.get(cluster.url + "/splice/ping").status_code == 200
