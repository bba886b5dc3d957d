"""The ODB side of the scheduler: jobs (written by servers) and their runs (written by the active scheduler).

Every change of a job bumps ``clusters.jobs_changed`` in the same transaction; the scheduler watches that
one number. A run's identity is ``(job_id, slot_us)``, unique in ``job_runs``: whichever scheduler claims
a slot first inserts its row, and no slot is ever claimed twice, failovers included.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..core.errors import Conflict, NotFound
from ..jobs.spec import iso_us
from .models import Cluster, Job, JobRun
from .repository import OdbRepository

JOB_COLUMNS = ("service", "payload", "trigger", "misfire", "retries", "backoff", "paused")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Claim:
    """A slot the scheduler takes: the run row to insert and where the job goes next."""

    job_id: int
    job_name: str
    service: str
    slot_us: int
    kind: str
    status: str
    missed: int
    cid: str
    next_due_us: int | None
    expected_us: int | None
    """The job's ``next_due_us`` (or ``run_now_us`` for a manual run) as read: the claim holds only if unchanged."""
    error: str | None = None


class JobRepository:
    """Jobs and runs of one cluster, on the repository's engine."""

    def __init__(self, repository: OdbRepository) -> None:
        self.repository = repository
        self.engine = repository.engine

    @property
    def cluster_id(self) -> int:
        return self.repository.cluster_id

    @contextlib.asynccontextmanager
    async def _changing(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn
            await conn.execute(
                update(Cluster).where(Cluster.id == self.cluster_id).values(jobs_changed=Cluster.jobs_changed + 1)
            )

    # -- what servers do (admin API, self.schedule, declarations) --------------------------------------------

    async def create(self, row: dict[str, Any], next_due_us: int | None, origin: str) -> dict[str, Any]:
        values = {**row, "next_due_us": None if row["paused"] else next_due_us, "origin": origin[:500]}
        try:
            async with self._changing() as conn:
                await conn.execute(insert(Job).values(cluster_id=self.cluster_id, updated_us=now_us(), **values))
        except IntegrityError:
            raise Conflict(f"a job named '{row['name']}' exists already") from None
        return await self.get(row["name"])

    async def replace(self, row: dict[str, Any], next_due_us: int | None, origin: str) -> dict[str, Any]:
        """Create the job, or change it to ``row`` if one of that name exists (its history stays)."""
        try:
            return await self.create(row, next_due_us, origin)
        except Conflict:
            return await self.update(row["name"], row, next_due_us)

    async def update(self, name: str, row: dict[str, Any], next_due_us: int | None) -> dict[str, Any]:
        values = {key: row[key] for key in JOB_COLUMNS if key in row}
        # A run asked for by hand (run-now) stays asked for: a change of the job does not cancel it.
        values.update(next_due_us=None if row.get("paused") else next_due_us, updated_us=now_us())
        async with self._changing() as conn:
            result = await conn.execute(update(Job).where(*self._named(name)).values(**values))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def set_paused(self, name: str, paused: bool, next_due_us: int | None) -> dict[str, Any]:
        values: dict[str, Any] = {"paused": paused, "updated_us": now_us()}
        values["next_due_us"] = None if paused else next_due_us
        async with self._changing() as conn:
            result = await conn.execute(update(Job).where(*self._named(name)).values(**values))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def run_now(self, name: str) -> dict[str, Any]:
        async with self._changing() as conn:
            result = await conn.execute(update(Job).where(*self._named(name)).values(run_now_us=now_us()))
            if not result.rowcount:
                raise NotFound(f"no job named '{name}'")
        return await self.get(name)

    async def delete(self, name: str) -> None:
        async with self._changing() as conn:
            found = (await conn.execute(select(Job.id).where(*self._named(name)))).first()
            if found is None:
                raise NotFound(f"no job named '{name}'")
            await conn.execute(delete(JobRun).where(JobRun.job_id == found[0]))
            await conn.execute(delete(Job).where(Job.id == found[0]))

    def _named(self, name: str) -> tuple[Any, ...]:
        return (Job.cluster_id == self.cluster_id, Job.name == name)

    async def get(self, name: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(Job).where(*self._named(name)))).first()
        if row is None:
            raise NotFound(f"no job named '{name}'")
        return _job(row)

    async def find(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.get(name)
        except NotFound:
            return None

    async def all(self) -> list[dict[str, Any]]:
        query = select(Job).where(Job.cluster_id == self.cluster_id).order_by(Job.name)
        async with self.engine.connect() as conn:
            return [_job(row) for row in (await conn.execute(query)).all()]

    async def history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        job = await self.get(name)
        query = (
            select(JobRun)
            .where(JobRun.cluster_id == self.cluster_id, JobRun.job_id == job["id"])
            .order_by(JobRun.slot_us.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return [_run(row) for row in (await conn.execute(query)).all()]

    # -- what the active scheduler does ----------------------------------------------------------------------

    async def changed(self) -> int:
        query = select(Cluster.jobs_changed).where(Cluster.id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)

    async def schedulable(self) -> tuple[int, list[dict[str, Any]]]:
        """The change counter and every job that has something to run (not paused; a slot or a run-now)."""
        async with self.engine.begin() as conn:
            counter = (await conn.execute(select(Cluster.jobs_changed).where(Cluster.id == self.cluster_id))).scalar()
            query = select(Job).where(
                Job.cluster_id == self.cluster_id,
                Job.paused.is_(False),
                (Job.next_due_us.is_not(None)) | (Job.run_now_us.is_not(None)),
            )
            rows = (await conn.execute(query)).all()
        return int(counter or 0), [_job(row, raw=True) for row in rows]

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
            await conn.execute(update(Job).where(Job.id.in_(ids)).values(next_due_us=Job.next_due_us))
        query = (
            select(Job.id, Job.next_due_us, Job.run_now_us)
            .where(Job.cluster_id == self.cluster_id, Job.id.in_(ids))
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
        await conn.execute(insert(JobRun), runs)
        scheduled = [
            {"job": c.job_id, "slot": c.slot_us, "next": c.next_due_us} for c in fresh if c.kind == "scheduled"
        ]
        if scheduled:
            statement = (
                update(Job)
                .where(Job.id == bindparam("job"))
                .values(next_due_us=bindparam("next"), last_slot_us=bindparam("slot"))
            )
            await conn.execute(statement, scheduled)
        manual = [c.job_id for c in fresh if c.kind != "scheduled"]
        if manual:
            await conn.execute(update(Job).where(Job.id.in_(manual)).values(run_now_us=None))
        return fresh

    async def finish(self, results: Iterable[dict[str, Any]]) -> None:
        """Record outcomes: each a dict of ``job_id``, ``slot_us``, ``status``, ``attempts``, ``server``, ``error``,
        ``started_us`` and ``finished_us``."""
        params = [
            {
                "job": r["job_id"],
                "slot": r["slot_us"],
                "status": r["status"],
                "attempts": r["attempts"],
                "server": r.get("server"),
                "error": r.get("error"),
                "started": r.get("started_us"),
                "finished": r.get("finished_us"),
            }
            for r in results
        ]
        if not params:
            return
        statement = (
            update(JobRun)
            .where(JobRun.job_id == bindparam("job"), JobRun.slot_us == bindparam("slot"))
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

    async def interrupt(self, scheduler: str) -> int:
        """Runs other schedulers left under way: they stopped (or lost the lease) before the outcome came back."""
        message = "its scheduler stopped before the outcome came back: the service may or may not have run"
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(JobRun)
                .where(
                    JobRun.cluster_id == self.cluster_id,
                    JobRun.status.in_(("running", "retrying")),
                    JobRun.scheduler != scheduler,
                )
                .values(status="interrupted", error=message)
            )
        return int(result.rowcount or 0)

    async def prune(self, before_us: int) -> int:
        """Delete runs dispatched before ``before_us`` (the retention setting)."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(JobRun).where(
                    JobRun.cluster_id == self.cluster_id,
                    JobRun.dispatched_us < before_us,
                    JobRun.status.not_in(("running", "retrying")),
                )
            )
        return int(result.rowcount or 0)

    async def count_runs(self) -> int:
        query = select(func.count()).select_from(JobRun).where(JobRun.cluster_id == self.cluster_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar() or 0)


def _job(row: Any, raw: bool = False) -> dict[str, Any]:
    out = {
        "id": row.id,
        "name": row.name,
        "service": row.service,
        "payload": row.payload,
        "trigger": row.trigger,
        "misfire": row.misfire,
        "retries": row.retries,
        "backoff": row.backoff,
        "paused": bool(row.paused),
        "origin": row.origin,
        "updated_us": row.updated_us,
    }
    if raw:
        out.update(next_due_us=row.next_due_us, last_slot_us=row.last_slot_us, run_now_us=row.run_now_us)
    else:
        out.update(
            next_run=iso_us(row.next_due_us),
            last_slot=iso_us(row.last_slot_us),
            run_now_requested=iso_us(row.run_now_us),
        )
    return out


def _run(row: Any) -> dict[str, Any]:
    took = None
    if row.started_us is not None and row.finished_us is not None:
        took = round((row.finished_us - row.started_us) / 1000, 3)
    return {
        "id": row.id,
        "job": row.job_name,
        "service": row.service,
        "slot": iso_us(row.slot_us),
        "kind": row.kind,
        "status": row.status,
        "attempts": row.attempts,
        "missed": row.missed,
        "cid": row.cid,
        "server": row.server,
        "scheduler": row.scheduler,
        "error": row.error,
        "started": iso_us(row.started_us),
        "finished": iso_us(row.finished_us),
        "late_ms": None if row.started_us is None else round((row.started_us - row.slot_us) / 1000, 3),
        "took_ms": took,
    }
