"""Scheduled jobs through the admin API of one in-process server, on every ODB backend.

Covers creating each kind of trigger and what the answer says of it, the refusals that name the field,
duplicates, replace, listing (with the active scheduler), reading, changing, pausing, resuming, run-now,
deleting and the run history; the endpoint the scheduler runs jobs through (NDJSON outcomes, what the
service sees in ``self.request.scheduler``); and ``self.schedule`` from a running service.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from splice.server.jobs import Claim, RunOutcome, to_us
from splice.server.odb import JobRepository
from splice.server.odb.models import JobRun, Lease
from splice.server.runtime import Runtime
from tests.conftest import InProcess

JOBS = "/splice/admin/jobs"
DISPATCH = "/splice/admin/scheduler/dispatch"

TOOLS = textwrap.dedent(
    '''
    import json
    from pathlib import Path

    from splice.server import Service


    class Record(Service):
        """Writes what it saw of its call to the file named in the payload."""

        name = "tools.record"

        def handle(self):
            seen = {
                "scheduler": dict(self.request.scheduler) if self.request.scheduler is not None else None,
                "cid": self.cid,
                "payload": self.request.payload,
                "channel": self.request.channel,
                "server": self.server,
            }
            Path(self.request.payload["file"]).write_text(json.dumps(seen))
            self.response.payload = "recorded"


    class Fail(Service):
        name = "tools.fail"

        async def handle(self):
            raise ValueError("the batch is broken")


    class Typed(Service):
        name = "tools.typed"

        class Input:
            count: int

        def handle(self):
            self.response.payload = self.request.input["count"]


    class Unmade(Service):
        """Fails before its handle() is ever reached: where the invoker's net for user code does not reach."""

        name = "tools.unmade"

        def __init__(self):
            raise RuntimeError("cannot be made")

        def handle(self):
            pass


    class PlanSync(Service):
        name = "plan.sync"

        def handle(self):
            made = self.schedule.create("made-by-sync", "tools.record", interval={"minutes": 5}, payload={"n": 1})
            seen = self.schedule.get("made-by-sync")
            changed = self.schedule.change("made-by-sync", payload={"n": 2})
            gone = self.schedule.cancel("no-such-job")
            self.response.payload = {"made": made, "seen": seen, "changed": changed, "gone": gone}


    class PlanAsync(Service):
        name = "plan.async"

        async def handle(self):
            made = await self.schedule.acreate(
                "made-by-async", "tools.record", cron="30 9 * * *", timezone="Asia/Tokyo", retries=2
            )
            self.response.payload = {"made": made, "missing": await self.schedule.aget("no-such-job")}


    class PlanWrong(Service):
        name = "plan.wrong"

        async def handle(self):
            self.schedule.create("never-made", "tools.record", in_=60)
    '''
)


def parse(moment: str | None) -> datetime:
    assert moment is not None
    parsed = datetime.fromisoformat(moment)
    assert parsed.utcoffset() == timedelta(0), moment
    return parsed


def iso(value_us: int) -> str:
    """Microseconds since the epoch as the API shows them."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value_us)).isoformat()


async def deploy_tools(server: InProcess) -> None:
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": "tools.py", "source": TOOLS}]})
    assert answer.status_code == 200, answer.text


async def create(server: InProcess, **body: Any) -> httpx.Response:
    return await server.admin.post(JOBS, json=body)


async def created(server: InProcess, **body: Any) -> dict[str, Any]:
    answer = await create(server, **body)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def runtime_of(server: InProcess) -> Runtime:
    assert isinstance(server.runtime, Runtime)
    return server.runtime


def repository(server: InProcess) -> JobRepository:
    """The server's own job repository: what its admin API writes through."""
    jobs = runtime_of(server).jobs
    assert jobs is not None
    assert isinstance(jobs.repository, JobRepository)
    return jobs.repository


async def add_runs(server: InProcess, name: str, count: int) -> list[int]:
    """Claim ``count`` slots of job ``name`` as a scheduler does and record their outcomes; answers the slots."""
    jobs = repository(server)
    slots = []
    for index in range(count):
        _, rows = await jobs.schedulable()
        [row] = [r for r in rows if r.name == name]
        slot = row.next_due_us
        assert slot is not None
        claim = Claim(row.id, name, row.spec.service, slot, "scheduled", "running", 0, f"cid-{index}", slot + 1, slot)
        assert await jobs.claim([claim], "sched-a:1") == [claim]
        outcome = RunOutcome(
            row.id, slot, "ok", attempts=1, server="server1", started_us=slot + 10, finished_us=slot + 20
        )
        await jobs.finish([outcome])
        slots.append(slot)
    return slots


# -- creating ----------------------------------------------------------------------------------------------------


async def test_create_an_interval_job_in_seconds_or_in_units(server: InProcess) -> None:
    before = datetime.now(UTC)
    seconds = await created(server, name="every-30", service="tools.record", interval=30, payload={"a": 1})
    minutes = await created(server, name="every-5-min", service="tools.record", interval={"minutes": 5})
    after = datetime.now(UTC)

    first = parse(seconds["next_run"])
    assert before + timedelta(seconds=30) <= first <= after + timedelta(seconds=30)
    assert seconds["schedule"] == f"every 30 s from {first}"
    assert seconds["trigger"] == {
        "kind": "interval",
        "weeks": 0,
        "days": 0,
        "hours": 0,
        "minutes": 0,
        "seconds": 30,
        "start": first.isoformat(),
        "repeats": None,
    }
    assert (seconds["name"], seconds["service"], seconds["payload"]) == ("every-30", "tools.record", {"a": 1})
    assert (seconds["paused"], seconds["misfire"], seconds["retries"], seconds["backoff"]) == (
        False,
        "run_once",
        0,
        1.0,
    )
    assert (seconds["origin"], seconds["last_slot"], seconds["run_now_requested"]) == ("admin-api", None, None)
    assert isinstance(seconds["id"], int)
    assert "updated_us" not in seconds

    later = parse(minutes["next_run"])
    assert before + timedelta(minutes=5) <= later <= after + timedelta(minutes=5)
    assert minutes["schedule"] == f"every 5 min from {later}"
    assert minutes["trigger"]["minutes"] == 5


async def test_create_a_cron_job_in_a_timezone(server: InProcess) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")  # no DST: 09:30 there is 00:30 UTC every day

    def next_0930(moment: datetime) -> datetime:
        local = moment.astimezone(tokyo)
        slot = local.replace(hour=9, minute=30, second=0, microsecond=0)
        return (slot if slot >= local else slot + timedelta(days=1)).astimezone(UTC)

    before = datetime.now(UTC)
    job = await created(server, name="morning", service="tools.record", cron="30 9 * * *", timezone="Asia/Tokyo")
    after = datetime.now(UTC)
    assert job["schedule"] == "cron '30 9 * * *' (Asia/Tokyo)"
    assert job["trigger"] == {"kind": "cron", "expression": "30 9 * * *", "timezone": "Asia/Tokyo"}
    assert parse(job["next_run"]) in {next_0930(before), next_0930(after)}
    assert parse(job["next_run"]).astimezone(tokyo).strftime("%H:%M:%S") == "09:30:00"

    utc = await created(server, name="hourly", service="tools.record", cron="@hourly")
    assert utc["schedule"] == "cron '@hourly' (UTC)"
    assert (parse(utc["next_run"]).minute, parse(utc["next_run"]).second) == (0, 0)


async def test_create_a_one_time_job_at_a_moment_or_in_seconds(server: InProcess) -> None:
    at = await created(server, name="new-year", service="tools.record", at="2030-01-01T10:00:00+01:00")
    assert at["next_run"] == "2030-01-01T09:00:00+00:00"
    assert at["schedule"] == "once at 2030-01-01 09:00:00+00:00"
    assert at["trigger"] == {"kind": "once", "at": "2030-01-01T09:00:00+00:00"}

    before = datetime.now(UTC)
    soon = await created(server, name="in-an-hour", service="tools.record", **{"in": 3600})
    after = datetime.now(UTC)
    moment = parse(soon["next_run"])
    assert before + timedelta(hours=1) <= moment <= after + timedelta(hours=1)
    assert soon["schedule"] == f"once at {moment}"

    past = await created(server, name="long-ago", service="tools.record", at="2020-01-01T00:00:00Z")
    assert past["next_run"] is None  # nothing left to run


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron.minute", "minute"),
        ({"cron": "0 25 * * *"}, "cron.hour", "hour"),
        ({"cron": "0 0 30 2 *"}, "cron", ""),
        ({"interval": 30, "colour": "blue"}, "colour", "unknown field"),
        ({"interval": 30, "cron": "* * * * *"}, "cron", "one trigger"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone", "Mars/Olympus"),
        ({"at": "2030-01-01T10:00:00"}, "at", "timezone"),
        ({"at": "tomorrow"}, "at", "ISO-8601"),
        ({"interval": {"fortnights": 1}}, "interval.fortnights", "unknown unit"),
        ({"interval": 0}, "interval", "more than 0"),
        ({}, "trigger", "is required"),
        ({"interval": 30, "retries": -1}, "retries", "whole number"),
        ({"interval": 30, "misfire": "sometimes"}, "misfire", "run_once"),
        ({"in": 30, "start": "2030-01-01T00:00:00Z"}, "start", ""),
        ({"interval": 30, "service": None}, "service", "required"),
        ({"interval": 30, "name": 7}, "name", "string"),
    ],
)
async def test_a_wrong_job_is_refused_naming_the_field(
    server: InProcess, body: dict[str, Any], field: str, words: str
) -> None:
    answer = await server.admin.post(JOBS, json={"name": "bad", "service": "tools.record", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_job"
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")
    assert words in error["message"]
    assert (await server.admin.get(JOBS)).json()["jobs"] == []


async def test_create_refuses_bodies_that_are_not_jobs(server: InProcess) -> None:
    for content in (b"{not json", b"[1, 2]"):
        answer = await server.admin.post(JOBS, content=content)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "bad_request"
    answer = await create(server, name="a", service="tools.record", interval=30, replace="yes")
    assert answer.status_code == 400
    assert "'replace'" in answer.json()["error"]["message"]
    assert (await server.admin.get(JOBS)).json()["jobs"] == []


async def test_a_duplicate_name_is_a_conflict_unless_replace(server: InProcess) -> None:
    await deploy_tools(server)
    first = await created(server, name="tick", service="tools.record", interval=30, created_by="ops")
    assert first["origin"] == "ops"
    duplicate = await create(server, name="tick", service="tools.record", cron="* * * * *")
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["code"] == "conflict"
    assert "'tick'" in duplicate.json()["error"]["message"]
    assert (await server.admin.get(f"{JOBS}/tick")).json() == first

    replaced = await created(server, name="tick", service="tools.record", cron="*/5 * * * *", payload=3, replace=True)
    assert replaced["id"] == first["id"]
    assert replaced["schedule"] == "cron '*/5 * * * *' (UTC)"
    assert replaced["payload"] == 3
    assert replaced["origin"] == "ops"  # who made it first
    assert parse(replaced["next_run"]).minute % 5 == 0
    fresh = await created(server, name="tock", service="tools.record", interval=30, replace=True)
    assert fresh["id"] != first["id"]
    assert [job["name"] for job in (await server.admin.get(JOBS)).json()["jobs"]] == ["tick", "tock"]


async def test_a_job_for_a_service_not_deployed_warns(server: InProcess) -> None:
    early = await created(server, name="early", service="tools.record", interval=30)
    assert early["warning"] == ("no service named 'tools.record' is deployed yet: its runs fail until one is")
    assert "warning" not in (await server.admin.get(f"{JOBS}/early")).json()
    await deploy_tools(server)
    assert "warning" not in await created(server, name="late", service="tools.record", interval=30)


# -- reading -----------------------------------------------------------------------------------------------------


async def test_list_shows_the_jobs_and_the_active_scheduler(server: InProcess) -> None:
    assert (await server.admin.get(JOBS)).json() == {"jobs": [], "scheduler": None}
    b = await created(server, name="b-job", service="tools.record", interval=30)
    a = await created(server, name="a-job", service="tools.record", cron="@daily")
    b.pop("warning")
    a.pop("warning")
    listed = (await server.admin.get(JOBS)).json()
    assert listed == {"jobs": [{**a, "last_run": None}, {**b, "last_run": None}], "scheduler": None}

    odb = runtime_of(server).repository
    assert await odb.acquire_lease("scheduler", "sched-a:7", 30)
    active = (await server.admin.get(JOBS)).json()["scheduler"]
    assert active["name"] == "sched-a:7"
    expires = parse(active["lease_expires"])
    assert datetime.now(UTC) < expires <= datetime.now(UTC) + timedelta(seconds=31)

    # A lease that ran out is no active scheduler.
    async with odb.engine.begin() as conn:
        past = datetime.now(UTC) - timedelta(seconds=5)
        await conn.execute(update(Lease).where(Lease.name == "scheduler").values(expires_at=past))
    assert (await server.admin.get(JOBS)).json()["scheduler"] is None
    # Other leases (the pickup watcher's, say) are not the scheduler's.
    await odb.release_lease("scheduler", "sched-a:7")
    assert await odb.acquire_lease("scheduler-extra", "sched-b:8", 30)
    assert (await server.admin.get(JOBS)).json()["scheduler"] is None


async def test_get_one_job_or_404(server: InProcess) -> None:
    job = await created(server, name="reports.nightly", service="tools.record", cron="0 2 * * *")
    job.pop("warning")
    answer = await server.admin.get(f"{JOBS}/reports.nightly")
    assert answer.status_code == 200
    assert answer.json() == job
    missing = await server.admin.get(f"{JOBS}/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "'nobody'" in missing.json()["error"]["message"]


# -- changing ----------------------------------------------------------------------------------------------------


async def test_patch_changes_the_fields_given_and_refuses_a_rename(server: InProcess) -> None:
    job = await created(
        server, name="morning", service="tools.record", cron="30 9 * * *", timezone="Asia/Tokyo", payload={"v": 1}
    )
    url = f"{JOBS}/morning"
    answer = await server.admin.patch(url, json={"payload": {"v": 2}, "retries": 4})
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert (changed["payload"], changed["retries"]) == ({"v": 2}, 4)
    assert (changed["id"], changed["trigger"], changed["next_run"]) == (job["id"], job["trigger"], job["next_run"])

    answer = await server.admin.patch(url, json={"cron": "15 * * * *"})
    assert answer.status_code == 200, answer.text
    recron = answer.json()
    assert recron["schedule"] == "cron '15 * * * *' (Asia/Tokyo)"  # the timezone stays
    assert parse(recron["next_run"]).minute == 15
    assert parse(recron["next_run"]) <= datetime.now(UTC) + timedelta(hours=1)
    assert (recron["payload"], recron["retries"]) == ({"v": 2}, 4)

    answer = await server.admin.patch(url, json={"interval": {"hours": 2}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["schedule"].startswith("every 2 h from ")

    renamed = await server.admin.patch(url, json={"name": "evening"})
    assert renamed.status_code == 400
    assert "cannot be renamed" in renamed.json()["error"]["message"]
    same_name = await server.admin.patch(url, json={"name": "morning", "misfire": "skip"})
    assert same_name.status_code == 200, same_name.text
    assert same_name.json()["misfire"] == "skip"

    bad = await server.admin.patch(url, json={"cron": "99 * * * *"})
    assert bad.status_code == 400
    assert bad.json()["error"]["field"] == "cron.minute"
    unknown = await server.admin.patch(url, json={"colour": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["field"] == "colour"
    wrong_option = await server.admin.patch(url, json={"timezone": "Europe/Berlin"})
    assert wrong_option.status_code == 400  # an interval job has no timezone
    assert wrong_option.json()["error"]["field"] == "timezone"

    final = (await server.admin.get(url)).json()
    assert (final["name"], final["misfire"], final["payload"]) == ("morning", "skip", {"v": 2})
    assert final["trigger"]["kind"] == "interval"
    assert [j["name"] for j in (await server.admin.get(JOBS)).json()["jobs"]] == ["morning"]
    missing = await server.admin.patch(f"{JOBS}/nobody", json={"payload": 1})
    assert missing.status_code == 404


async def test_pause_clears_the_next_run_and_resume_computes_it_from_now(server: InProcess) -> None:
    # Every minute on the minute since 2020: the next slot is always within the coming minute.
    await created(server, name="minutely", service="tools.record", interval=60, start="2020-01-01T00:00:00Z")
    paused = await server.admin.post(f"{JOBS}/minutely/pause")
    assert paused.status_code == 200, paused.text
    assert (paused.json()["paused"], paused.json()["next_run"]) == (True, None)
    assert (await server.admin.get(f"{JOBS}/minutely")).json()["next_run"] is None
    _, rows = await repository(server).schedulable()
    assert rows == []
    # Changing a paused job keeps it paused, with no next run.
    changed = (await server.admin.patch(f"{JOBS}/minutely", json={"payload": 5})).json()
    assert (changed["paused"], changed["next_run"]) == (True, None)

    before = datetime.now(UTC)
    resumed = await server.admin.post(f"{JOBS}/minutely/resume")
    after = datetime.now(UTC)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["paused"] is False
    upcoming = parse(resumed.json()["next_run"])
    assert before <= upcoming < after + timedelta(minutes=1)
    assert (upcoming.second, upcoming.microsecond) == (0, 0)
    _, rows = await repository(server).schedulable()
    assert [row.name for row in rows] == ["minutely"]

    for action in ("pause", "resume", "run-now"):
        missing = await server.admin.post(f"{JOBS}/nobody/{action}")
        assert missing.status_code == 404, action


async def test_run_now_asks_for_a_run_and_keeps_the_schedule(server: InProcess) -> None:
    job = await created(server, name="tick", service="tools.record", interval=3600)
    before = datetime.now(UTC)
    answer = await server.admin.post(f"{JOBS}/tick/run-now")
    after = datetime.now(UTC)
    assert answer.status_code == 200, answer.text
    asked = answer.json()
    assert before - timedelta(milliseconds=1) <= parse(asked["run_now_requested"]) <= after
    assert asked["next_run"] == job["next_run"]
    _, rows = await repository(server).schedulable()
    assert rows[0].run_now_us == to_us(parse(asked["run_now_requested"]))
    changed = await server.admin.patch(f"{JOBS}/tick", json={"payload": {"v": 2}})
    assert changed.json()["run_now_requested"] == asked["run_now_requested"]  # a change does not cancel it


async def test_delete_removes_the_job_and_its_history(server: InProcess) -> None:
    await created(server, name="doomed", service="tools.record", interval=30)
    await created(server, name="kept", service="tools.record", interval=30)
    await add_runs(server, "doomed", 2)
    await add_runs(server, "kept", 1)
    doomed_id = (await server.admin.get(f"{JOBS}/doomed")).json()["id"]
    assert len((await server.admin.get(f"{JOBS}/doomed/history")).json()["runs"]) == 2

    answer = await server.admin.delete(f"{JOBS}/doomed")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"deleted": "doomed"}
    assert (await server.admin.get(f"{JOBS}/doomed")).status_code == 404
    assert (await server.admin.get(f"{JOBS}/doomed/history")).status_code == 404
    async with runtime_of(server).repository.engine.connect() as conn:
        left = (await conn.execute(select(JobRun.job_name).where(JobRun.job_id == doomed_id))).all()
    assert left == []
    assert len((await server.admin.get(f"{JOBS}/kept/history")).json()["runs"]) == 1
    again = await server.admin.delete(f"{JOBS}/doomed")
    assert again.status_code == 404


async def test_history_newest_first_with_a_limit(server: InProcess) -> None:
    await created(server, name="tick", service="tools.record", interval=30)
    assert (await server.admin.get(f"{JOBS}/tick/history")).json() == {"job": "tick", "runs": []}
    slots = await add_runs(server, "tick", 3)
    runs = (await server.admin.get(f"{JOBS}/tick/history")).json()["runs"]
    assert [run["slot"] for run in runs] == [iso(slot) for slot in sorted(slots, reverse=True)]
    assert [run["cid"] for run in runs] == ["cid-2", "cid-1", "cid-0"]
    assert {(run["status"], run["server"], run["job"]) for run in runs} == {("ok", "server1", "tick")}
    limited = (await server.admin.get(f"{JOBS}/tick/history", params={"limit": "2"})).json()["runs"]
    assert [run["cid"] for run in limited] == ["cid-2", "cid-1"]
    assert len((await server.admin.get(f"{JOBS}/tick/history?limit=10000")).json()["runs"]) == 3
    for bad in ("0", "-1", "abc", "10001", "1.5", "", " 2", "²", "٣"):
        answer = await server.admin.get(f"{JOBS}/tick/history", params={"limit": bad})
        assert answer.status_code == 400, bad
        assert "'limit'" in answer.json()["error"]["message"]
    assert (await server.admin.get(f"{JOBS}/nobody/history")).status_code == 404


async def test_the_list_gives_each_job_its_newest_run_in_one_answer(server: InProcess) -> None:
    await created(server, name="busy", service="tools.record", interval=30)
    await created(server, name="idle", service="tools.record", interval=30)
    await add_runs(server, "busy", 3)
    listed = {job["name"]: job for job in (await server.admin.get(JOBS)).json()["jobs"]}
    newest = (await server.admin.get(f"{JOBS}/busy/history", params={"limit": "1"})).json()["runs"][0]
    assert listed["busy"]["last_run"] == newest
    assert newest["cid"] == "cid-2"
    assert listed["idle"]["last_run"] is None
    assert "last_run" not in (await server.admin.get(f"{JOBS}/busy")).json()  # one job's answer is unchanged


ENDPOINTS = [
    ("GET", JOBS),
    ("POST", JOBS),
    ("GET", f"{JOBS}/tick"),
    ("PATCH", f"{JOBS}/tick"),
    ("DELETE", f"{JOBS}/tick"),
    ("POST", f"{JOBS}/tick/pause"),
    ("POST", f"{JOBS}/tick/resume"),
    ("POST", f"{JOBS}/tick/run-now"),
    ("GET", f"{JOBS}/tick/history"),
    ("POST", DISPATCH),
]


async def test_every_job_endpoint_needs_the_token(server: InProcess, tmp_path: Path) -> None:
    await deploy_tools(server)
    await created(server, name="tick", service="tools.record", interval=30)
    record = tmp_path / "ran.json"
    run = {"job_id": 1, "slot_us": 1, "job": "tick", "service": "tools.record", "cid": "c" * 24}
    bodies: Mapping[str, Any] = {
        JOBS: {"name": "tock", "service": "tools.record", "interval": 30},
        DISPATCH: {"runs": [{**run, "payload": {"file": str(record)}}]},
    }
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        for method, path in ENDPOINTS:
            answer = await server.client.request(method, path, json=bodies.get(path, {"payload": 1}), headers=headers)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "unauthorized"
    assert not record.exists()
    job = (await server.admin.get(f"{JOBS}/tick")).json()
    assert (job["paused"], job["payload"], job["run_now_requested"]) == (False, None, None)
    assert [j["name"] for j in (await server.admin.get(JOBS)).json()["jobs"]] == ["tick"]


# -- the scheduler's dispatch endpoint ---------------------------------------------------------------------------


async def dispatch(server: InProcess, body: Any) -> list[dict[str, Any]]:
    answer = await asyncio.wait_for(server.admin.post(DISPATCH, json=body), 30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-ndjson"
    assert answer.text == "" or answer.text.endswith("\n")
    return [json.loads(line) for line in answer.text.splitlines()]


def a_run(job_id: int, service: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "slot_us": 1_790_000_000_000_000 + job_id,
        "job": f"job-{job_id}",
        "service": service,
        **extra,
    }


async def test_dispatch_runs_a_batch_and_streams_one_outcome_per_run(server: InProcess, tmp_path: Path) -> None:
    await deploy_tools(server)
    runs = [
        a_run(
            1,
            "tools.record",
            cid="a" * 24,
            payload={"file": str(tmp_path / "1.json"), "n": 1},
            slot="2026-11-21T10:00:00+00:00",
            kind="scheduled",
            attempt=2,
            missed=3,
        ),
        a_run(2, "tools.fail", cid="b" * 24),
        a_run(3, "tools.absent", cid="c" * 24),
        a_run(4, "tools.record", cid="d" * 24, payload={"file": str(tmp_path / "4.json")}, kind="manual"),
        a_run(5, "tools.typed", cid="e" * 24, payload={"count": "many"}),
    ]
    before = datetime.now(UTC)
    outcomes = await dispatch(server, {"scheduler": "sched-a:42", "runs": runs})
    after = datetime.now(UTC)

    assert len(outcomes) == len(runs)
    by_job = {outcome["job_id"]: outcome for outcome in outcomes}
    assert sorted(by_job) == [1, 2, 3, 4, 5]
    for run in runs:
        outcome = by_job[run["job_id"]]
        assert outcome["slot_us"] == run["slot_us"]
        assert outcome["server"] == "server1"
        assert to_us(before) <= outcome["started_us"] <= outcome["finished_us"] <= to_us(after)
    assert [by_job[i]["status"] for i in (1, 2, 3, 4, 5)] == ["ok", "failed", "failed", "ok", "failed"]
    assert by_job[1]["error"] is None
    assert "tools.fail" in by_job[2]["error"]
    assert "ValueError: the batch is broken" in by_job[2]["error"]
    assert by_job[3]["error"] == "no service named 'tools.absent' is deployed"
    assert "invalid input for service 'tools.typed'" in by_job[5]["error"]
    assert "count" in by_job[5]["error"]

    seen = json.loads((tmp_path / "1.json").read_text())
    assert seen == {
        "scheduler": {
            "job": "job-1",
            "job_id": 1,
            "run": f"1:{runs[0]['slot_us']}",
            "slot": "2026-11-21T10:00:00+00:00",
            "kind": "scheduled",
            "attempt": 2,
            "missed": 3,
            "scheduler": "sched-a:42",
        },
        "cid": "a" * 24,
        "payload": runs[0]["payload"],
        "channel": "scheduler",
        "server": "server1",
    }
    manual = json.loads((tmp_path / "4.json").read_text())
    assert manual["scheduler"]["kind"] == "manual"
    assert (manual["scheduler"]["attempt"], manual["scheduler"]["run"]) == (1, f"4:{runs[3]['slot_us']}")
    assert manual["cid"] == "d" * 24


async def test_dispatch_fills_in_what_a_run_leaves_out(server: InProcess, tmp_path: Path) -> None:
    await deploy_tools(server)
    run = a_run(9, "tools.record", cid="f" * 24, payload={"file": str(tmp_path / "9.json")})
    [outcome] = await dispatch(server, {"runs": [run]})
    assert outcome["status"] == "ok"
    seen = json.loads((tmp_path / "9.json").read_text())["scheduler"]
    assert seen == {
        "job": "job-9",
        "job_id": 9,
        "run": f"9:{run['slot_us']}",
        "slot": None,
        "kind": "scheduled",
        "attempt": 1,
        "missed": 0,
        "scheduler": "scheduler",
    }
    assert await dispatch(server, {"runs": []}) == []


async def test_dispatch_ends_when_outcomes_come_back_together(server: InProcess) -> None:
    """Runs that fail at once finish together and share a chunk; the stream still ends, with each outcome once."""
    await deploy_tools(server)
    runs = [a_run(i, "tools.absent" if i % 2 else "tools.fail", cid=f"{i:024d}") for i in range(1, 41)]
    outcomes = await dispatch(server, {"runs": runs})
    assert sorted((o["job_id"], o["slot_us"]) for o in outcomes) == [(r["job_id"], r["slot_us"]) for r in runs]
    assert {o["status"] for o in outcomes} == {"failed"}


async def test_dispatch_answers_for_a_service_that_fails_outside_handle(server: InProcess) -> None:
    await deploy_tools(server)
    runs = [a_run(1, "tools.unmade", cid="1" * 24), a_run(2, "tools.unmade", cid="2" * 24)]
    outcomes = await dispatch(server, {"runs": runs})
    assert sorted(o["job_id"] for o in outcomes) == [1, 2]
    for outcome in outcomes:
        assert outcome["status"] == "failed"
        assert outcome["error"] == "service 'tools.unmade' failed: RuntimeError: cannot be made"
        assert outcome["server"] == "server1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "field 'runs' must be a list"),
        (b"{}", "field 'runs' must be a list"),
        (b'{"runs": {"job_id": 1}}', "field 'runs' must be a list"),
        (b'{"runs": [1]}', "runs[0] must be an object"),
        (
            b'{"runs": [{"job_id": "1", "slot_us": 1, "job": "j", "service": "s", "cid": "c"}]}',
            "runs[0].job_id must be int",
        ),
        (b'{"runs": [{"job_id": 1, "slot_us": 1.5, "job": "j", "service": "s", "cid": "c"}]}', "runs[0].slot_us"),
        (
            b'{"runs": [{"job_id": 1, "slot_us": 1, "job": "j", "service": "s", "cid": "c"},'
            b' {"job_id": 2, "slot_us": 1, "job": "j", "service": "s"}]}',
            "runs[1].cid must be str",
        ),
    ],
)
async def test_dispatch_refuses_a_bad_body_before_running_anything(
    server: InProcess, tmp_path: Path, body: bytes, message: str
) -> None:
    await deploy_tools(server)
    answer = await server.admin.post(DISPATCH, content=body.replace(b'"s"', b'"tools.record"'))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "bad_request"
    assert message in answer.json()["error"]["message"]
    assert answer.json()["cid"] == answer.headers["x-splice-cid"]


# -- self.schedule ----------------------------------------------------------------------------------------------


async def invoke(server: InProcess, service: str) -> httpx.Response:
    return await server.admin.post("/splice/admin/invoke", json={"service": service})


async def test_a_def_handle_service_schedules_with_the_plain_methods(server: InProcess) -> None:
    await deploy_tools(server)
    answer = await invoke(server, "plan.sync")
    assert answer.status_code == 200, answer.text
    result = answer.json()["payload"]
    assert result["made"]["origin"] == "service:plan.sync"
    assert result["made"]["schedule"].startswith("every 5 min from ")
    assert result["seen"]["payload"] == {"n": 1}
    assert result["changed"]["payload"] == {"n": 2}
    assert result["gone"] is False
    stored = (await server.admin.get(f"{JOBS}/made-by-sync")).json()
    assert (stored["origin"], stored["payload"], stored["service"]) == ("service:plan.sync", {"n": 2}, "tools.record")
    # Called again, it changes the job it made (``replace`` is the default for services) rather than failing.
    again = await invoke(server, "plan.sync")
    assert again.status_code == 200, again.text
    assert again.json()["payload"]["made"]["id"] == stored["id"]


async def test_an_async_def_handle_service_schedules_with_the_a_methods(server: InProcess) -> None:
    await deploy_tools(server)
    answer = await invoke(server, "plan.async")
    assert answer.status_code == 200, answer.text
    result = answer.json()["payload"]
    assert result["missing"] is None
    stored = (await server.admin.get(f"{JOBS}/made-by-async")).json()
    assert stored == result["made"]
    assert stored["origin"] == "service:plan.async"
    assert stored["schedule"] == "cron '30 9 * * *' (Asia/Tokyo)"
    assert stored["retries"] == 2


async def test_the_blocking_method_inside_async_def_is_refused_clearly(server: InProcess) -> None:
    await deploy_tools(server)
    answer = await invoke(server, "plan.wrong")
    assert answer.status_code == 500
    message = answer.json()["error"]["message"]
    assert "self.schedule.create() blocks" in message
    assert "await self.schedule.acreate()" in message
    assert (await server.admin.get(f"{JOBS}/never-made")).status_code == 404
