"""Managing scheduled jobs from a server: the one place behind the admin API, ``self.schedule`` and declarations.

Jobs are rows in the ODB; the scheduler (``splice.scheduler``, a process of its own) watches them and
runs them through the servers. Here a job is checked (``spec``, pure) and written through a ``JobStore``; the
scheduler sees every change within its poll interval. Answers are ``Job`` and ``JobRun`` records: each edge
turns them into what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..core.errors import BadRequest
from .records import Job, JobRun
from .spec import first_due_us, parse_job
from .store import JobStore

SCHEDULER_LEASE = "scheduler"
"""The lease the active scheduler holds (in ``leases``)."""
SCHEDULER_STATE_FILE = "scheduler.state"
"""In a scheduler's directory: what the process says of itself (JSON: ``pid``, ``state``, ``since``)."""


class Jobs:
    """Create, change, pause, resume, run now, delete and read jobs."""

    def __init__(self, repository: JobStore) -> None:
        self.repository = repository

    async def create(self, body: Mapping[str, Any], origin: str, replace: bool = False) -> Job:
        """Check ``body`` (a job definition, see ``spec``) and store it; with ``replace``, change a job of that name."""
        now = datetime.now(UTC)
        spec = parse_job(body, now)
        write = self.repository.replace if replace else self.repository.create
        return await write(spec, first_due_us(spec.trigger, now), origin)

    async def change(self, name: str, body: Mapping[str, Any]) -> Job:
        """Change the fields of job ``name`` that ``body`` gives; the others keep their values."""
        now = datetime.now(UTC)
        current = (await self.repository.get(name)).spec
        spec = parse_job({**body, "name": name} if "name" not in body else body, now, partial_of=current)
        if spec.name != name:
            raise_rename(name, spec.name)
        return await self.repository.update(name, spec, first_due_us(spec.trigger, now))

    async def pause(self, name: str) -> Job:
        return await self.repository.set_paused(name, True, None)

    async def resume(self, name: str) -> Job:
        """Runs resume from now on: slots that passed while paused are not run."""
        current = (await self.repository.get(name)).spec
        due = first_due_us(current.trigger, datetime.now(UTC))
        return await self.repository.set_paused(name, False, due)

    async def run_now(self, name: str) -> Job:
        return await self.repository.run_now(name)

    async def delete(self, name: str) -> None:
        await self.repository.delete(name)

    async def get(self, name: str) -> Job:
        return await self.repository.get(name)

    async def find(self, name: str) -> Job | None:
        return await self.repository.find(name)

    async def all(self) -> list[Job]:
        return await self.repository.all()

    async def history(self, name: str, limit: int = 50) -> list[JobRun]:
        return await self.repository.history(name, limit)

    async def last_runs(self) -> dict[int, JobRun]:
        return await self.repository.last_runs()


def raise_rename(old: str, new: str) -> None:
    raise BadRequest(f"a job cannot be renamed ('{old}' to '{new}'): create the new one and delete the old")
