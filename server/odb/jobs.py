"""The ODB side of the scheduler: jobs (written by servers) and their runs (written by the active scheduler).

Every change of a job bumps ``clusters.jobs_changed`` in the same transaction; the scheduler watches that
one number. A run's identity is ``(job_id, slot_us)``, unique in ``job_runs``: whichever scheduler claims
a slot first inserts its row, and no slot is ever claimed twice, failovers included. Rows come back as the
records of ``splice.server.jobs`` (``Job``, ``JobRun``); this module implements its ``JobStore``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from ..jobs import Claim, Job, JobRun, JobSpec, JobStore, RunOutcome, now_us, trigger_from_dict
from .models import Cluster
from .models import Job as JobRow
from .models import JobRun as RunRow
from .scope import ClusterScope

__all__ = ["JobRepository", "now_us"]

logger = logging.getLogger(__name__)


class JobRepository(JobStore):
    """Jobs and runs of one cluster, on the scope (engine and cluster) of the ``OdbRepository`` given."""

    def __init__(self, scope: ClusterScope) -> None:
        self.scope = scope
        self.engine = scope.engine

    @property
    def cluster_id(self) -> int:
        return self.scope.cluster_id

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn
            await conn.execute(
                update(Cluster).where(Cluster.id == self.cluster_id).values(jobs_changed=Cluster.jobs_changed + 1)
            )

    # -- what servers do (admin API, self.schedule, declarations) --------------------------------------------

    async def create(self, spec: JobSpec, next_due_us: int | None, origin: str) -> Job:
        values = {**spec.as_json(), "next_due_us": None if spec.paused else next_due_us, "origin": origin[:500]}
        try:
            async with self._changing() as conn:
                await conn.execute(insert(JobRow).values(cluster_id=self.cluster_id, updated_us=now_us(), **values))
        except IntegrityError:
            raise Conflict(f"a job named '{spec.name}' exists already") from None
        return await self.get(spec.name)

    async def replace(self, spec: JobSpec, next_due_us: int | None, origin: str) -> Job:
        """Create the job, or change the job of that name to ``spec`` (its history stays)."""
        try:
            return await self.create(spec, next_due_us, origin)
        except Conflict:
            return await self.update(spec.name, spec, next_due_us)

    async def update(self, name: str, spec: JobSpec, next_due_us: int | None) -> Job:
        values = {key: value for key, value in spec.as_json().items() if key != "name"}
        # A run asked for by hand (run-now) stays asked for: a change of the job does not cancel it.
        values.update(next_due_us=None if spec.paused else next_due_us, updated_us=now_us())
        async with self._changing() as conn:
            result = await conn.execute(update(JobRow).where(*self._named(name)).values(**values))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def set_paused(self, name: str, paused: bool, next_due_us: int | None) -> Job:
        values: dict[str, Any] = {"paused": paused, "updated_us": now_us()}
        values["next_due_us"] = None if paused else next_due_us
        async with self._changing() as conn:
            result = await conn.execute(update(JobRow).where(*self._named(name)).values(**values))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def run_now(self, name: str) -> Job:
        async with self._changing() as conn:
            result = await conn.execute(update(JobRow).where(*self._named(name)).values(run_now_us=now_us()))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def delete(self, name: str) -> None:
        async with self._changing() as conn:
            found = (await conn.execute(select(JobRow.id).where(*self._named(name)))).first()
            if found is None:
                raise NotFound(f"no job named '{name}'")
            await conn.execute(delete(RunRow).where(RunRow.job_id == found[0]))
            await conn.execute(delete(JobRow).where(JobRow.id == found[0]))

    def _named(self, name: str) -> tuple[Any, ...]:
        return (JobRow.cluster_id == self.cluster_id, JobRow.name == name)

    async def get(self, name: str) -> Job:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(JobRow).where(*self._named(name)))).first()
        if row is None:
            raise NotFound(f"no job named '{name}'")
        return _job(row)

    async def find(self, name: str) -> Job | None:
        try:
            return await self.get(name)
        except NotFound:
            return None

    async def all(self) -> list[Job]:
        query = select(JobRow).where(JobRow.cluster_id == self.cluster_id).order_by(JobRow.name)
        async with self.engine.connect() as conn:
            return [_job(row) for row in (await conn.execute(query)).all()]

    async def history(self, name: str, limit: int = 50) -> list[JobRun]:
        job = await self.get(name)
        query = (
            select(RunRow)
            .where(RunRow.cluster_id == self.cluster_id, RunRow.job_id == job.id)
            .order_by(RunRow.slot_us.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_run(row) for row in (await conn.execute(query)).all()]

    async def last_runs(self) -> dict[int, JobRun]:
        """Each job's newest run, by job id, in one query (a job list shows them all at once)."""
        newest = (
            select(RunRow.job_id, func.max(RunRow.slot_us).label("slot_us"))
            .where(RunRow.cluster_id == self.cluster_id)
            .group_by(RunRow.job_id)
            .subquery()
        )
        query = (
            select(RunRow)
            .join(newest, (RunRow.job_id == newest.c.job_id) & (RunRow.slot_us == newest.c.slot_us))
            .where(RunRow.cluster_id == self.cluster_id)
        )
        async with self.engine.connect() as conn:
            return {row.job_id: _run(row) for row in (await conn.execute(query)).all()}

    # -- what the active scheduler does ----------------------------------------------------------------------

    async def changed(self) -> int:
        query = select(Cluster.jobs_changed).where(Cluster.id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def schedulable(self) -> tuple[int, list[Job]]:
        """The change counter and every job that has something to run (not paused; a slot or a run-now).

        A job whose stored trigger cannot be read (a timezone this host does not know, say) is left out, logged.
        """
        async with self.engine.begin() as conn:
            counter = (await conn.execute(select(Cluster.jobs_changed).where(Cluster.id == self.cluster_id))).scalar()
            query = select(JobRow).where(
                JobRow.cluster_id == self.cluster_id,
                JobRow.paused.is_(False),
                (JobRow.next_due_us.is_not(None)) | (JobRow.run_now_us.is_not(None)),
            )
            rows = (await conn.execute(query)).all()
        jobs = []
        for row in rows:
            try:
                jobs.append(_job(row))
            except ValueError as exc:
                logger.error("job %s has a trigger that cannot be read (%s); it is not run", row.name, exc)
        return int(counter or 0), jobs

    async def claim(self, claims: Sequence[Claim], scheduler: str) -> list[Claim]:
        """Insert the runs of ``claims`` and move their jobs on, in one transaction; answers the claims taken.

        A job changed or deleted since it was read (its ``next_due_us``, or ``run_now_us`` for a manual run, is
        no longer the claim's ``expected_us``) is left out. So is a slot another scheduler claimed already (the
        unique ``(job_id, slot_us)``): a clash makes the batch fall back to one claim at a time.
        """
        if not claims:
            return []
        try:
            async with self.engine.begin() as conn:
                return await self._claim_rows(conn, claims, scheduler)
        except (IntegrityError, OperationalError):
            pass
        taken: list[Claim] = []
        for claim in claims:
            try:
                async with self.engine.begin() as conn:
                    taken += await self._claim_rows(conn, [claim], scheduler)
            except (IntegrityError, OperationalError):
                continue
        return taken

    async def _claim_rows(self, conn: AsyncConnection, claims: Sequence[Claim], scheduler: str) -> list[Claim]:
        ids = sorted({c.job_id for c in claims})
        if conn.dialect.name == "sqlite":
            # SQLite ignores FOR UPDATE and reads without a lock: another scheduler could move these jobs on
            # between the read and the insert (with a slot of its own, so no unique clash stops it). A write
            # first takes the database's one write lock, held to the commit, so the read below is current.
            await conn.execute(update(JobRow).where(JobRow.id.in_(ids)).values(next_due_us=JobRow.next_due_us))
        query = (
            select(JobRow.id, JobRow.next_due_us, JobRow.run_now_us)
            .where(JobRow.cluster_id == self.cluster_id, JobRow.id.in_(ids))
            .with_for_update()
        )
        current = {row.id: row for row in (await conn.execute(query)).all()}
        fresh = [
            c
            for c in claims
            if c.job_id in current
            and (current[c.job_id].next_due_us if c.kind == "scheduled" else current[c.job_id].run_now_us)
            == c.expected_us
        ]
        if not fresh:
            return []
        stamp = now_us()
        runs = [
            {
                "cluster_id": self.cluster_id,
                "job_id": c.job_id,
                "job_name": c.job_name,
                "service": c.service,
                "slot_us": c.slot_us,
                "kind": c.kind,
                "status": c.status,
                "attempts": 0,
                "missed": c.missed,
                "cid": c.cid,
                "scheduler": scheduler,
                "error": c.error,
                "dispatched_us": stamp,
            }
            for c in fresh
        ]
        await conn.execute(insert(RunRow), runs)
        scheduled = [
            {"job": c.job_id, "slot": c.slot_us, "next": c.next_due_us} for c in fresh if c.kind == "scheduled"
        ]
        if scheduled:
            statement = (
                update(JobRow)
                .where(JobRow.id == bindparam("job"))
                .values(next_due_us=bindparam("next"), last_slot_us=bindparam("slot"))
            )
            await conn.execute(statement, scheduled)
        manual = [c.job_id for c in fresh if c.kind != "scheduled"]
        if manual:
            await conn.execute(update(JobRow).where(JobRow.id.in_(manual)).values(run_now_us=None))
        return fresh

    async def finish(self, outcomes: Iterable[RunOutcome]) -> None:
        """Record what became of runs (each found by its job and slot)."""
        params = [
            {
                "job": o.job_id,
                "slot": o.slot_us,
                "status": o.status,
                "attempts": o.attempts,
                "server": o.server,
                "error": o.error,
                "started": o.started_us,
                "finished": o.finished_us,
            }
            for o in outcomes
        ]
        if not params:
            return
        statement = (
            update(RunRow)
            .where(RunRow.job_id == bindparam("job"), RunRow.slot_us == bindparam("slot"))
            .values(
                status=bindparam("status"),
                attempts=bindparam("attempts"),
                server=bindparam("server"),
                error=bindparam("error"),
                started_us=bindparam("started"),
                finished_us=bindparam("finished"),
            )
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement, params)

    async def mark_sent(self, keys: Iterable[tuple[int, int]], scheduler: str) -> set[tuple[int, int]]:
        """Mark the claimed runs ``keys`` (job id, slot) of ``scheduler`` as sent (``running``), just before they go
        out; answers the keys marked. A run another scheduler took over meanwhile is not ours to send any more: it
        is left out, so a run is sent by one scheduler only, whoever claimed it.

        One conditional UPDATE per run (by the unique key; the row lock orders it with ``take_over``): this runs
        at the slot, so it is kept short."""
        wanted = set(keys)
        if not wanted:
            return set()
        stamp = now_us()  # when they were sent: the run's dispatch time from now on
        statement = (
            update(RunRow)
            .where(
                RunRow.job_id == bindparam("job"),
                RunRow.slot_us == bindparam("slot"),
                RunRow.scheduler == scheduler,
                RunRow.status == "claimed",
            )
            .values(status="running", dispatched_us=stamp)
        )
        async with self.engine.begin() as conn:
            result = await conn.execute(statement, [{"job": job, "slot": slot} for job, slot in sorted(wanted)])
            if conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(wanted):
                return wanted
            # Some were taken over, or the driver cannot count (asyncpg): the ones marked carry this call's stamp.
            query = select(RunRow.job_id, RunRow.slot_us).where(
                RunRow.cluster_id == self.cluster_id,
                RunRow.job_id.in_(sorted({job for job, _ in wanted})),
                RunRow.scheduler == scheduler,
                RunRow.status == "running",
                RunRow.dispatched_us == stamp,
            )
            return {(row.job_id, row.slot_us) for row in (await conn.execute(query)).all()} & wanted

    async def _claimed(self, conn: AsyncConnection) -> dict[tuple[int, int], int]:
        """The claimed runs of the cluster, locked to the transaction's end: their ids by key."""
        if conn.dialect.name == "sqlite":
            # SQLite reads without a lock: a write first takes the database's write lock (see ``_claim_rows``).
            await conn.execute(update(Cluster).where(Cluster.id == self.cluster_id).values(id=Cluster.id))
        query = select(RunRow.id, RunRow.job_id, RunRow.slot_us).where(
            RunRow.cluster_id == self.cluster_id, RunRow.status == "claimed"
        )
        rows = (await conn.execute(query.with_for_update())).all()
        return {(row.job_id, row.slot_us): row.id for row in rows}

    async def take_over(self, scheduler: str) -> list[tuple[Claim, Job, str]]:
        """Claimed runs not sent yet, whoever claimed them, are ``scheduler``'s to send now: answers each run's
        claim, its job (as it is now) and the scheduler that claimed it. The runs stay ``claimed`` (their new holder
        marks them sent as any other); a run whose job is gone went with it."""
        async with self.engine.begin() as conn:
            taken = await self._claimed(conn)
            if not taken:
                return []
            ids = list(taken.values())
            runs = (await conn.execute(select(RunRow).where(RunRow.id.in_(ids)).order_by(RunRow.slot_us))).all()
            found = select(JobRow).where(JobRow.id.in_(sorted({run.job_id for run in runs})))
            jobs = {row.id: row for row in (await conn.execute(found)).all()}
            await conn.execute(update(RunRow).where(RunRow.id.in_(ids)).values(scheduler=scheduler))
        out: list[tuple[Claim, Job, str]] = []
        for run in runs:
            try:
                job = _job(jobs[run.job_id])
            except (KeyError, ValueError) as exc:
                logger.error("job %s cannot be read (%r): its claimed run is not sent", run.job_name, exc)
                continue
            claim = Claim(
                run.job_id, run.job_name, run.service, run.slot_us, run.kind, "claimed", run.missed, run.cid, None, None
            )
            out.append((claim, job, run.scheduler))
        return out

    async def interrupt(self, scheduler: str) -> int:
        """Runs other schedulers sent and left under way: they stopped (or lost the lease) before the outcome came
        back, so nobody knows whether they ran (at most once: they are never sent again). Claimed runs that were
        not sent yet are not touched: ``take_over`` hands them to the new scheduler."""
        message = "sent by a scheduler that stopped before the outcome came back: the service may or may not have run"
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(RunRow)
                .where(
                    RunRow.cluster_id == self.cluster_id,
                    RunRow.status.in_(("running", "retrying")),
                    RunRow.scheduler != scheduler,
                )
                .values(status="interrupted", error=message)
            )
        return int(result.rowcount or 0)

    async def prune(self, before_us: int) -> int:
        """Delete runs dispatched before ``before_us`` (the retention setting)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(RunRow).where(
                    RunRow.cluster_id == self.cluster_id,
                    RunRow.dispatched_us < before_us,
                    RunRow.status.not_in(("claimed", "running", "retrying")),
                )
            )
        return int(result.rowcount or 0)

    async def count_runs(self) -> int:
        query = select(func.count()).select_from(RunRow).where(RunRow.cluster_id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)


def _job(row: Any) -> Job:
    """A stored job as its record; ``ValueError`` (``ScheduleError``) when its trigger cannot be read."""
    spec = JobSpec(
        name=row.name,
        service=row.service,
        trigger=trigger_from_dict(row.trigger),
        payload=row.payload,
        misfire=row.misfire,
        retries=row.retries,
        backoff=row.backoff,
        paused=bool(row.paused),
    )
    return Job(row.id, spec, row.origin, row.next_due_us, row.last_slot_us, row.run_now_us)


def _run(row: Any) -> JobRun:
    return JobRun(
        id=row.id,
        job=row.job_name,
        service=row.service,
        slot_us=row.slot_us,
        kind=row.kind,
        status=row.status,
        attempts=row.attempts,
        missed=row.missed,
        cid=row.cid,
        server=row.server,
        scheduler=row.scheduler,
        error=row.error,
        started_us=row.started_us,
        finished_us=row.finished_us,
    )
