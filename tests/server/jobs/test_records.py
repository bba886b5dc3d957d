"""The records of stored jobs and runs: their JSON forms (what the admin API answers), the mapping a ``Job`` reads
as, the claims the scheduler makes of a job, and the jobs package importing no database code."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from splice.server.jobs import Claim, Job, JobRun, JobSpec, parse_job, to_us

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
NOW_US = to_us(NOW)


def spec(**fields: object) -> JobSpec:
    return parse_job({"name": "cleanup", "service": "accounts.cleanup", "interval": 60, **fields}, NOW)


def test_a_specs_json_form_reads_back_as_the_same_spec() -> None:
    for made in (spec(payload={"id": 7}, retries=2), spec(interval={"minutes": 1.5}, repeats=3, paused=True)):
        assert parse_job(made.as_json(), datetime(2030, 1, 1, tzinfo=UTC)) == made


def test_a_job_answers_as_the_admin_api_shows_it_and_reads_as_that_mapping() -> None:
    job = Job(7, spec(payload=[1]), "admin-api", next_due_us=NOW_US + 60_000_000, last_slot_us=NOW_US)
    shown = job.as_json()
    assert list(shown) == [
        "id",
        "name",
        "service",
        "payload",
        "trigger",
        "misfire",
        "retries",
        "backoff",
        "paused",
        "origin",
        "next_run",
        "last_slot",
        "run_now_requested",
        "schedule",
    ]
    assert (shown["id"], shown["name"], shown["payload"], shown["origin"]) == (7, "cleanup", [1], "admin-api")
    assert shown["trigger"]["kind"] == "interval"
    assert (shown["next_run"], shown["last_slot"]) == ("2026-11-21T10:01:00+00:00", "2026-11-21T10:00:00+00:00")
    assert shown["run_now_requested"] is None
    assert shown["schedule"] == "every 60 s from 2026-11-21 10:01:00+00:00"
    assert dict(job) == shown
    assert (job["origin"], job.get("service"), len(job), job.name) == ("admin-api", "accounts.cleanup", 14, "cleanup")


@pytest.mark.parametrize(
    ("started", "finished", "late_ms", "took_ms"),
    [(None, None, None, None), (NOW_US + 2_000, None, 2.0, None), (NOW_US + 2_000, NOW_US + 7_500, 2.0, 5.5)],
)
def test_a_run_shows_its_lateness_and_duration_in_milliseconds(
    started: int | None, finished: int | None, late_ms: float | None, took_ms: float | None
) -> None:
    run = JobRun(
        1, "cleanup", "accounts.cleanup", NOW_US, "scheduled", "ok", 1, 0, "c1", "s1", "sched", None, started, finished
    )
    shown = run.as_json()
    assert (shown["late_ms"], shown["took_ms"]) == (late_ms, took_ms)
    assert shown["slot"] == "2026-11-21T10:00:00+00:00"
    assert shown["started"] == (None if started is None else "2026-11-21T10:00:00.002000+00:00")


def test_claims_of_a_job_carry_what_was_read_and_a_fresh_cid_each() -> None:
    job = Job(3, spec(), "admin-api", next_due_us=NOW_US, run_now_us=NOW_US - 5)
    slot = Claim.scheduled(job, NOW_US, NOW_US + 60_000_000, run=False, missed=2, reason="late: skipped")
    assert (slot.job_id, slot.job_name, slot.service, slot.slot_us, slot.kind, slot.status, slot.missed) == (
        3,
        "cleanup",
        "accounts.cleanup",
        NOW_US,
        "scheduled",
        "skipped",
        2,
    )
    assert (slot.next_due_us, slot.expected_us, slot.error) == (NOW_US + 60_000_000, NOW_US, "late: skipped")
    hand = Claim.manual(job)
    assert (hand.kind, hand.status, hand.slot_us, hand.expected_us, hand.next_due_us) == (
        "manual",
        "claimed",
        NOW_US - 5,
        NOW_US - 5,
        None,
    )
    assert len({slot.cid, hand.cid, Claim.manual(job).cid}) == 3
    assert Claim.scheduled(job, NOW_US, None, run=True, missed=0).error is None
    with pytest.raises(ValueError, match="no run asked for"):
        Claim.manual(Job(4, spec(), "admin-api"))


def test_importing_the_jobs_package_imports_no_database_code() -> None:
    code = "import sys, splice.server.jobs; print(sorted(m for m in sys.modules if m.split('.')[0] == 'sqlalchemy'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
