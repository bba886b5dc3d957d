"""``JobRepository`` on every ODB backend: jobs as servers write them, runs as schedulers claim and record them.

Two repositories on two engines stand for two schedulers (or a scheduler and a server) at the same time:
a slot is claimed once whoever races for it, a claim made on a stale read of its job is left out, and a
batch with one clashing claim still takes the others. Clocks are patched where a test needs time to pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from splice.server.core.errors import Conflict, NotFound
from splice.server.jobs import Claim, Interval, Job, JobSpec, RunOutcome, first_due_us, now_us, parse_job, to_us
from splice.server.odb import JobRepository, OdbRepository, connect
from splice.server.odb import cluster as cluster_module
from splice.server.odb import jobs as jobs_module
from splice.server.odb.models import JobRun as RunRow

MINUTE_US = 60_000_000


def job(name: str, **fields: Any) -> tuple[JobSpec, int | None]:
    """A job's spec and first due time, as a server makes them (``Jobs.create``): an interval of a minute by default."""
    now = datetime.now(UTC)
    body = {"name": name, "service": "tools.tick", **fields}
    if not {"interval", "cron", "at", "in"} & set(fields):
        body["interval"] = 60
    spec = parse_job(body, now)
    return spec, first_due_us(spec.trigger, now)


async def make(jobs: JobRepository, name: str, **fields: Any) -> Job:
    spec, due = job(name, **fields)
    return await jobs.create(spec, due, "test")


async def raw(jobs: JobRepository, name: str) -> Job:
    """A job as the scheduler reads it (``schedulable``), found by name."""
    _, rows = await jobs.schedulable()
    found = [row for row in rows if row.name == name]
    assert found, f"{name} is not schedulable"
    return found[0]


def due_of(row: Job) -> int:
    assert row.next_due_us is not None, f"{row.name} has no next slot"
    return row.next_due_us


def scheduled(row: Job, slot_us: int, next_us: int | None, cid: str = "c1") -> Claim:
    """A claim of ``slot_us`` for a job as read in ``row``; the job goes on to ``next_us``."""
    return Claim(row.id, row.name, row.spec.service, slot_us, "scheduled", "claimed", 0, cid, next_us, row.next_due_us)


def manual(row: Job, cid: str = "m1") -> Claim:
    at = row.run_now_us
    assert at is not None
    return Claim(row.id, row.name, row.spec.service, at, "manual", "claimed", 0, cid, None, at)


async def history(jobs: JobRepository, name: str, limit: int = 50) -> list[dict[str, Any]]:
    """The runs of job ``name`` as the admin API shows them."""
    return [run.as_json() for run in await jobs.history(name, limit)]


def iso(value_us: int) -> str:
    """Microseconds since the epoch as the API shows them (exactly: no float on the way)."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value_us)).isoformat()


async def runs_of(repository: OdbRepository, job_id: int) -> list[Any]:
    query = select(RunRow).where(RunRow.job_id == job_id).order_by(RunRow.slot_us)
    async with repository.engine.connect() as conn:
        return list((await conn.execute(query)).all())


# -- what servers write --------------------------------------------------------------------------------------


async def test_every_change_of_a_job_bumps_the_counter_and_a_refused_one_does_not(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    counter = await jobs.changed()

    async def bumped(by: int) -> None:
        nonlocal counter
        now = await jobs.changed()
        assert now == counter + by
        counter = now

    spec, due = job("tick")
    await jobs.create(spec, due, "test")
    await bumped(1)
    with pytest.raises(Conflict, match="'tick' exists already"):
        await jobs.create(spec, due, "test")
    await bumped(0)
    await jobs.replace(dataclasses.replace(spec, payload={"n": 1}), due, "test")  # exists: changed in place
    await bumped(1)
    other_spec, other_due = job("tock", cron="*/5 * * * *")
    await jobs.replace(other_spec, other_due, "test")  # new: created
    await bumped(1)
    await jobs.update("tick", dataclasses.replace(spec, payload={"n": 2}, retries=3), due)
    await bumped(1)
    with pytest.raises(NotFound):
        await jobs.update("nobody", spec, due)
    await bumped(0)
    await jobs.set_paused("tick", True, None)
    await bumped(1)
    await jobs.set_paused("tick", False, due)
    await bumped(1)
    await jobs.run_now("tick")
    await bumped(1)
    with pytest.raises(NotFound):
        await jobs.run_now("nobody")
    await bumped(0)
    await jobs.get("tick")
    await jobs.all()
    await jobs.history("tick")
    await bumped(0)
    await jobs.delete("tock")
    await bumped(1)
    with pytest.raises(NotFound):
        await jobs.delete("tock")
    await bumped(0)
    assert [j.name for j in await jobs.all()] == ["tick"]
    tick = (await jobs.get("tick")).spec
    assert (tick.payload, tick.retries, tick.paused) == ({"n": 2}, 3, False)


async def test_the_counter_is_the_clusters_own(odb: OdbRepository, odb_url: str) -> None:
    elsewhere = OdbRepository(connect(odb_url), "another-cluster")
    try:
        await elsewhere.ensure_cluster()
        theirs = JobRepository(elsewhere)
        before = await theirs.changed()
        await make(JobRepository(odb), "tick")
        assert await theirs.changed() == before
        assert await theirs.all() == []
        with pytest.raises(NotFound):
            await theirs.get("tick")
        # The same name in another cluster is no clash.
        await make(theirs, "tick")
        assert await theirs.changed() == before + 1
    finally:
        await elsewhere.engine.dispose()


async def test_a_paused_job_has_no_next_slot_even_when_created_paused(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    created = await make(jobs, "sleepy", paused=True)
    assert created.spec.paused is True
    assert created.as_json()["next_run"] is None
    spec, due = job("sleepy")
    assert due is not None
    changed = await jobs.update("sleepy", dataclasses.replace(spec, paused=True), due)
    assert changed.as_json()["next_run"] is None
    resumed = await jobs.set_paused("sleepy", False, due)
    assert resumed.spec.paused is False
    assert resumed.as_json()["next_run"] == iso(due)


async def test_schedulable_lists_only_unpaused_jobs_with_something_to_run(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "due")
    await make(jobs, "paused", paused=True)
    await make(jobs, "paused-with-run-now", paused=True)
    await jobs.run_now("paused-with-run-now")
    spec, _ = job("over")
    await jobs.create(spec, None, "test")  # a trigger with no slot left (a one-time job that ran, say)
    spec, _ = job("over-but-run-now")
    await jobs.create(spec, None, "test")
    await jobs.run_now("over-but-run-now")

    counter, rows = await jobs.schedulable()
    assert counter == await jobs.changed()
    assert sorted(r.name for r in rows) == ["due", "over-but-run-now"]
    by_name = {r.name: r for r in rows}
    assert by_name["due"].next_due_us is not None
    assert by_name["due"].run_now_us is None
    assert by_name["over-but-run-now"].next_due_us is None
    assert by_name["over-but-run-now"].run_now_us is not None
    assert isinstance(by_name["due"].spec.trigger, Interval)


# -- claims ----------------------------------------------------------------------------------------------------


async def test_a_claim_inserts_the_run_and_moves_the_job_on(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    row = await raw(jobs, "tick")
    slot = due_of(row)
    claim = scheduled(row, slot, slot + MINUTE_US)
    assert await jobs.claim([claim], "sched-a:1") == [claim]
    after = await raw(jobs, "tick")
    assert after.next_due_us == slot + MINUTE_US
    assert after.last_slot_us == slot
    [run] = await runs_of(odb, row.id)
    assert (run.slot_us, run.status, run.scheduler, run.cid, run.attempts) == (slot, "claimed", "sched-a:1", "c1", 0)
    # The same claim again is stale now (the job moved on), so nothing is taken twice.
    assert await jobs.claim([claim], "sched-a:1") == []
    assert len(await runs_of(odb, row.id)) == 1
    assert await jobs.claim([], "sched-a:1") == []


async def race(
    odb: OdbRepository, other: OdbRepository, their_slot_after: int
) -> list[tuple[Job, list[Claim], list[Claim]]]:
    """Six due jobs; two schedulers on two engines claim each at once, the second a slot ``their_slot_after``
    µs after the first's, and each with its own next slot (so the job's ``next_due_us`` tells whose claim held).
    Answers each job's row as read before, and what each scheduler took."""
    first, second = JobRepository(odb), JobRepository(other)
    names = [f"job-{i}" for i in range(6)]
    for name in names:
        await make(first, name)
    rows = [await raw(first, name) for name in names]
    ours = [scheduled(r, due_of(r), due_of(r) + MINUTE_US, cid=f"a-{r.id}") for r in rows]
    theirs = [scheduled(r, due_of(r) + their_slot_after, due_of(r) + 2 * MINUTE_US, cid=f"b-{r.id}") for r in rows]
    outcomes = await asyncio.gather(
        *(first.claim([claim], "sched-a:1") for claim in ours),
        *(second.claim([claim], "sched-b:2") for claim in theirs),
    )
    return [(row, outcomes[index], outcomes[index + len(rows)]) for index, row in enumerate(rows)]


async def test_a_slot_is_claimed_once_when_two_schedulers_race_for_it(odb: OdbRepository, other: OdbRepository) -> None:
    first = JobRepository(odb)
    for row, a, b in await race(odb, other, 0):
        assert len(a) + len(b) == 1, (row.name, a, b)
        winner = (a or b)[0]
        after = await raw(first, row.name)
        assert after.next_due_us == winner.next_due_us
        assert after.last_slot_us == row.next_due_us
        [run] = await runs_of(odb, row.id)
        assert run.cid == winner.cid
        assert run.scheduler == ("sched-a:1" if a else "sched-b:2")


async def test_two_schedulers_that_chose_different_slots_of_one_due_job_run_it_once(
    odb: OdbRepository, other: OdbRepository
) -> None:
    """A failover with clocks apart: both read the same due job, each picks its latest slot. One claim holds."""
    first = JobRepository(odb)
    for row, a, b in await race(odb, other, MINUTE_US):
        assert len(a) + len(b) == 1, (row.name, a, b)
        winner = (a or b)[0]
        runs = await runs_of(odb, row.id)
        assert [r.cid for r in runs] == [winner.cid]
        after = await raw(first, row.name)
        assert (after.next_due_us, after.last_slot_us) == (winner.next_due_us, winner.slot_us)


async def test_a_claim_on_a_stale_read_of_its_job_is_left_out(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "changed")
    await make(jobs, "deleted")
    await make(jobs, "paused")
    await make(jobs, "kept")
    read = {name: await raw(jobs, name) for name in ("changed", "deleted", "paused", "kept")}
    # Servers change three of them after the scheduler read them.
    row, _ = job("changed", interval=3600)
    moved = due_of(read["changed"]) + 3600 * 1_000_000
    await jobs.update("changed", row, moved)
    await jobs.delete("deleted")
    await jobs.set_paused("paused", True, None)

    claims = [scheduled(r, due_of(r), due_of(r) + MINUTE_US, cid=n) for n, r in read.items()]
    taken = await jobs.claim(claims, "sched-a:1")
    assert [c.job_name for c in taken] == ["kept"]
    assert (await raw(jobs, "changed")).next_due_us == moved  # the server's change stands
    assert (await jobs.get("paused")).as_json()["next_run"] is None
    for name in ("changed", "deleted", "paused"):
        assert await runs_of(odb, read[name]["id"]) == []
    assert len(await runs_of(odb, read["kept"]["id"])) == 1


async def test_a_manual_run_is_claimed_once_and_keeps_the_schedule(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    await jobs.run_now("tick")
    row = await raw(jobs, "tick")
    assert row.run_now_us is not None
    stale = Claim(row.id, "tick", "tools.tick", row.run_now_us, "manual", "claimed", 0, "x", None, 12345)
    assert await jobs.claim([stale], "sched-a:1") == []
    claim = manual(row)
    assert await jobs.claim([claim], "sched-a:1") == [claim]
    after = await jobs.get("tick")
    assert after.as_json()["run_now_requested"] is None
    assert (await raw(jobs, "tick")).next_due_us == row.next_due_us
    [run] = await runs_of(odb, row.id)
    assert (run.kind, run.slot_us, run.cid) == ("manual", row.run_now_us, "m1")
    assert await jobs.claim([claim], "sched-a:1") == []


async def test_a_batch_with_one_clashing_claim_still_takes_the_others(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    for name in ("a", "b", "c"):
        await make(jobs, name)
    b = await raw(jobs, "b")
    slot_b = due_of(b)
    assert await jobs.claim([scheduled(b, slot_b, slot_b + MINUTE_US, cid="b-first")], "sched-a:1")
    # b's slot is taken already; a claim of that same slot, made on a fresh read of b, clashes on (job, slot).
    fresh_b = await raw(jobs, "b")
    a, c = await raw(jobs, "a"), await raw(jobs, "c")
    claims = [
        scheduled(a, due_of(a), due_of(a) + MINUTE_US, cid="a"),
        scheduled(fresh_b, slot_b, slot_b + 5 * MINUTE_US, cid="b-again"),
        scheduled(c, due_of(c), due_of(c) + MINUTE_US, cid="c"),
    ]
    taken = await jobs.claim(claims, "sched-b:2")
    assert [t.cid for t in taken] == ["a", "c"]
    assert [r.cid for r in await runs_of(odb, b.id)] == ["b-first"]
    assert (await raw(jobs, "b")).next_due_us == slot_b + MINUTE_US
    assert (await raw(jobs, "a")).last_slot_us == a.next_due_us
    assert (await raw(jobs, "c")).last_slot_us == c.next_due_us


async def test_a_skipped_slot_is_recorded_with_its_reason(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "late")
    row = await raw(jobs, "late")
    slot = due_of(row)
    claim = Claim(
        row.id, "late", "tools.tick", slot, "scheduled", "skipped", 3, "s", slot + MINUTE_US, slot, error="late"
    )
    assert await jobs.claim([claim], "sched-a:1") == [claim]
    [run] = await history(jobs, "late")
    assert (run["status"], run["missed"], run["error"], run["started"], run["took_ms"]) == (
        "skipped",
        3,
        "late",
        None,
        None,
    )


# -- outcomes, interruptions, pruning ----------------------------------------------------------------------------


async def test_finish_records_outcomes_and_history_shows_them_newest_first(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    row = await raw(jobs, "tick")
    slots = [due_of(row) + i * MINUTE_US for i in range(3)]
    for index, slot in enumerate(slots):
        current = await raw(jobs, "tick")
        assert await jobs.claim([scheduled(current, slot, slot + MINUTE_US, cid=f"c{index}")], "sched-a:1")
    await jobs.finish(
        [
            RunOutcome(
                job_id=row.id,
                slot_us=slots[0],
                status="ok",
                attempts=1,
                server="server1",
                error=None,
                started_us=slots[0] + 2_000,
                finished_us=slots[0] + 7_500,
            ),
            RunOutcome(
                job_id=row.id,
                slot_us=slots[1],
                status="failed",
                attempts=3,
                server="server2",
                error="ValueError: no",
                started_us=slots[1] + 1_000,
                finished_us=slots[1] + 2_000,
            ),
        ]
    )
    await jobs.finish([])
    runs = await history(jobs, "tick")
    assert [h["cid"] for h in runs] == ["c2", "c1", "c0"]
    newest, failed, ok = runs
    assert (newest["status"], newest["server"], newest["started"], newest["took_ms"]) == ("claimed", None, None, None)
    assert (failed["status"], failed["attempts"], failed["server"], failed["error"]) == (
        "failed",
        3,
        "server2",
        "ValueError: no",
    )
    assert (ok["status"], ok["attempts"], ok["server"], ok["error"]) == ("ok", 1, "server1", None)
    assert (ok["late_ms"], ok["took_ms"]) == (2.0, 5.5)
    assert ok["slot"] == iso(slots[0])
    assert ok["started"] == iso(slots[0] + 2_000)
    assert (ok["job"], ok["service"], ok["kind"], ok["scheduler"]) == ("tick", "tools.tick", "scheduled", "sched-a:1")
    assert [h["cid"] for h in await history(jobs, "tick", limit=2)] == ["c2", "c1"]
    with pytest.raises(NotFound):
        await jobs.history("nobody")


async def test_interrupt_marks_the_runs_under_way_of_other_holders_only(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    statuses = {"old-running": "running", "old-retrying": "retrying", "old-ok": "ok", "old-failed": "failed"}
    for index, cid in enumerate([*statuses, "mine-running"]):
        current = await raw(jobs, "tick")
        slot = due_of(current)
        holder = "sched-b:2" if cid.startswith("mine") else "sched-a:1"
        assert await jobs.claim([scheduled(current, slot, slot + MINUTE_US, cid=cid)], holder), index
        assert await jobs.mark_sent([(current.id, slot)], holder) == {(current.id, slot)}
        if statuses.get(cid, "running") != "running":
            await jobs.finish([RunOutcome(current.id, slot, statuses[cid], attempts=1, error="was")])
    await claim_unsent(jobs, "sched-a:1", "old-claimed")
    assert await jobs.interrupt("sched-b:2") == 2
    after = {run["cid"]: run for run in await history(jobs, "tick")}
    assert {cid: run["status"] for cid, run in after.items()} == {
        "old-running": "interrupted",
        "old-retrying": "interrupted",
        "old-ok": "ok",
        "old-failed": "failed",
        "mine-running": "running",
        "old-claimed": "claimed",
    }
    assert "may or may not have run" in after["old-running"]["error"]
    assert after["old-ok"]["error"] == "was"
    assert await jobs.interrupt("sched-b:2") == 0


async def test_prune_deletes_old_finished_runs_only(odb: OdbRepository, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    clock = [now_us() - 10 * 86_400 * 1_000_000]  # ten days ago
    monkeypatch.setattr(jobs_module, "now_us", lambda: clock[0])
    plan = [("old-ok", "ok"), ("old-failed", "failed"), ("old-running", "running"), ("old-retrying", "retrying")]
    plan += [("new-ok", "ok"), ("new-running", "running")]
    for cid, status in plan:
        if cid.startswith("new"):
            clock[0] = to_us(datetime.now(UTC))
        current = await raw(jobs, "tick")
        slot = due_of(current)
        assert await jobs.claim([scheduled(current, slot, slot + MINUTE_US, cid=cid)], "sched-a:1")
        if status != "running":
            await jobs.finish([RunOutcome(current.id, slot, status, attempts=1)])
    cutoff = to_us(datetime.now(UTC) - timedelta(days=7))
    assert await jobs.count_runs() == 6
    assert await jobs.prune(cutoff) == 2
    assert sorted(run["cid"] for run in await history(jobs, "tick")) == [
        "new-ok",
        "new-running",
        "old-retrying",
        "old-running",
    ]
    assert await jobs.prune(cutoff) == 0
    assert await jobs.count_runs() == 4


# -- the scheduler lease ----------------------------------------------------------------------------------------


class _Clock(datetime):
    """``datetime`` whose ``now`` is set by the test (for the lease's expiry)."""

    at: datetime = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)

    @classmethod
    def now(cls, tz: Any = None) -> _Clock:  # type: ignore[override]
        return cls.at  # type: ignore[return-value]


@pytest.fixture
def lease_clock(monkeypatch: pytest.MonkeyPatch) -> type[_Clock]:
    monkeypatch.setattr(cluster_module, "datetime", _Clock)
    monkeypatch.setattr(_Clock, "at", datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    return _Clock


async def test_the_scheduler_lease_is_exclusive_between_two_holders_until_it_expires(
    odb: OdbRepository, other: OdbRepository, lease_clock: type[_Clock]
) -> None:
    assert await odb.acquire_lease("scheduler", "sched-a:1", 30) is True
    assert await other.acquire_lease("scheduler", "sched-b:2", 30) is False
    lease_clock.at += timedelta(seconds=20)
    assert await odb.acquire_lease("scheduler", "sched-a:1", 30) is True  # renewed: now until 10:00:50
    lease_clock.at += timedelta(seconds=20)
    assert await other.acquire_lease("scheduler", "sched-b:2", 30) is False  # 10:00:40, still held
    lease_clock.at += timedelta(seconds=11)
    assert await other.acquire_lease("scheduler", "sched-b:2", 30) is True  # 10:00:51, expired: taken over
    assert await odb.acquire_lease("scheduler", "sched-a:1", 30) is False
    held = (await odb.leases("scheduler"))["scheduler"]
    assert held["holder"] == "sched-b:2"
    assert held["expires_at"] == datetime(2026, 11, 21, 10, 1, 21, tzinfo=UTC)
    await other.release_lease("scheduler", "sched-a:1")  # not the holder: nothing happens
    assert await odb.acquire_lease("scheduler", "sched-a:1", 30) is False
    await other.release_lease("scheduler", "sched-b:2")
    assert await odb.acquire_lease("scheduler", "sched-a:1", 30) is True


async def test_only_one_of_two_holders_racing_for_a_free_lease_gets_it(
    odb: OdbRepository, other: OdbRepository
) -> None:
    for round_ in range(5):
        name = f"scheduler-race-{round_}"
        got = await asyncio.gather(odb.acquire_lease(name, "sched-a:1", 30), other.acquire_lease(name, "sched-b:2", 30))
        assert sorted(got) == [False, True], (round_, got)
        holder = (await odb.leases(name))[name]["holder"]
        assert holder == ("sched-a:1" if got[0] else "sched-b:2")


async def claim_unsent(jobs: JobRepository, holder: str, cid: str) -> tuple[int, int]:
    current = await raw(jobs, "tick")
    slot = due_of(current)
    assert await jobs.claim([scheduled(current, slot, slot + MINUTE_US, cid=cid)], holder)
    return (current.id, slot)


async def test_claimed_runs_not_sent_are_taken_over_and_sent_once(odb: OdbRepository) -> None:
    jobs = JobRepository(odb)
    await make(jobs, "tick")
    sent = await claim_unsent(jobs, "sched-a:1", "sent")
    assert await jobs.mark_sent([sent], "sched-a:1") == {sent}
    unsent = [await claim_unsent(jobs, "sched-a:1", f"unsent{i}") for i in range(2)]
    assert await jobs.mark_sent([], "sched-a:1") == set()
    assert await jobs.mark_sent([sent], "sched-a:1") == set()  # sent already: never twice
    taken = await jobs.take_over("sched-b:2")
    assert [(c.job_id, c.slot_us, c.cid, c.status, previous) for c, _, previous in taken] == [
        (*unsent[0], "unsent0", "claimed", "sched-a:1"),
        (*unsent[1], "unsent1", "claimed", "sched-a:1"),
    ]
    assert {job.name for _, job, _ in taken} == {"tick"}
    # The old scheduler, still alive, cannot send them any more; the new one can, once.
    assert await jobs.mark_sent(unsent, "sched-a:1") == set()
    assert await jobs.mark_sent(unsent, "sched-b:2") == set(unsent)
    assert await jobs.mark_sent(unsent, "sched-b:2") == set()
    assert await jobs.take_over("sched-c:3") == []
    runs = {run["cid"]: run for run in await history(jobs, "tick")}
    assert {cid: (run["status"], run["scheduler"]) for cid, run in runs.items()} == {
        "sent": ("running", "sched-a:1"),
        "unsent0": ("running", "sched-b:2"),
        "unsent1": ("running", "sched-b:2"),
    }
