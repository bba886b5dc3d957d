"""What the jobs manager needs of a job store: the protocol ``splice.server.odb.jobs.JobRepository`` implements.

Defined here, beside its one user, so that the jobs package imports no database code: the ODB adapter depends
on this package, never the other way round. Every change of a job must be seen by the scheduler (the ODB bumps a
change counter in the same transaction).
"""

from __future__ import annotations

from typing import Protocol

from .records import Job, JobRun
from .spec import JobSpec


class JobStore(Protocol):
    """Jobs of one cluster, as servers write and read them; a missing job raises ``NotFound``."""

    async def create(self, spec: JobSpec, next_due_us: int | None, origin: str) -> Job:
        """Store a new job (``Conflict`` if one of that name exists); a paused one gets no next slot."""
        ...

    async def replace(self, spec: JobSpec, next_due_us: int | None, origin: str) -> Job:
        """Create the job, or change the job of that name to ``spec`` (its history stays)."""
        ...

    async def update(self, name: str, spec: JobSpec, next_due_us: int | None) -> Job:
        """Change job ``name`` to ``spec``; a run asked for by hand stays asked for."""
        ...

    async def set_paused(self, name: str, paused: bool, next_due_us: int | None) -> Job: ...

    async def run_now(self, name: str) -> Job:
        """Ask for a run of job ``name`` now, besides its schedule."""
        ...

    async def delete(self, name: str) -> None:
        """Delete job ``name`` and its history."""
        ...

    async def get(self, name: str) -> Job: ...

    async def find(self, name: str) -> Job | None: ...

    async def all(self) -> list[Job]:
        """Every job of the cluster, by name."""
        ...

    async def history(self, name: str, limit: int = 50) -> list[JobRun]:
        """The last ``limit`` runs of job ``name``, newest slot first."""
        ...

    async def last_runs(self) -> dict[int, JobRun]:
        """Each job's newest run, by job id."""
        ...
