"""Managing scheduled jobs from a server: the one place behind the admin API, ``self.schedule`` and declarations.

Jobs are rows in the ODB; the scheduler (``splice.scheduler``, a process of its own) watches them and
runs them through the servers. Here a job is checked (``jobspec``, pure) and written; the scheduler sees every
change within its poll interval.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .spec import JobSpec, first_due_us, parse_job
from .triggers import describe, trigger_from_dict

if TYPE_CHECKING:
    from ..odb.jobs import JobRepository

SCHEDULER_LEASE = "scheduler"
"""The lease the active scheduler holds (in ``leases``)."""
SCHEDULER_STATE_FILE = "scheduler.state"
"""In a scheduler's directory: what the process says of itself (JSON: ``pid``, ``state``, ``since``)."""


def spec_of(row: dict[str, Any]) -> JobSpec:
    """A stored job as a ``JobSpec``."""
    return JobSpec(
        name=row["name"],
        service=row["service"],
        trigger=trigger_from_dict(row["trigger"]),
        payload=row["payload"],
        misfire=row["misfire"],
        retries=row["retries"],
        backoff=row["backoff"],
        paused=row["paused"],
    )


def shown(row: dict[str, Any]) -> dict[str, Any]:
    """A job as the admin API answers it: with its trigger in words."""
    out = {key: value for key, value in row.items() if key != "updated_us"}
    out["schedule"] = describe(trigger_from_dict(row["trigger"]))
    return out


class Jobs:
    """Create, change, pause, resume, run now, delete and read jobs."""

    def __init__(self, repository: JobRepository) -> None:
        self.repository = repository

    async def create(self, body: dict[str, Any], origin: str, replace: bool = False) -> dict[str, Any]:
        now = datetime.now(UTC)
        spec = parse_job(body, now)
        due = first_due_us(spec.trigger, now)
        if replace:
            return shown(await self.repository.replace(spec.as_row(), due, origin))
        return shown(await self.repository.create(spec.as_row(), due, origin))

    async def change(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC)
        current = spec_of(await self.repository.get(name))
        spec = parse_job({**body, "name": name} if "name" not in body else body, now, partial_of=current)
        if spec.name != name:
            raise_rename(name, spec.name)
        return shown(await self.repository.update(name, spec.as_row(), first_due_us(spec.trigger, now)))

    async def pause(self, name: str) -> dict[str, Any]:
        return shown(await self.repository.set_paused(name, True, None))

    async def resume(self, name: str) -> dict[str, Any]:
        """Runs resume from now on: slots that passed while paused are not run."""
        current = spec_of(await self.repository.get(name))
        due = first_due_us(current.trigger, datetime.now(UTC))
        return shown(await self.repository.set_paused(name, False, due))

    async def run_now(self, name: str) -> dict[str, Any]:
        return shown(await self.repository.run_now(name))

    async def delete(self, name: str) -> None:
        await self.repository.delete(name)

    async def get(self, name: str) -> dict[str, Any]:
        return shown(await self.repository.get(name))

    async def find(self, name: str) -> dict[str, Any] | None:
        row = await self.repository.find(name)
        return None if row is None else shown(row)

    async def all(self) -> list[dict[str, Any]]:
        return [shown(row) for row in await self.repository.all()]

    async def history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return await self.repository.history(name, limit)


def raise_rename(old: str, new: str) -> None:
    from ..core.errors import BadRequest

    raise BadRequest(f"a job cannot be renamed ('{old}' to '{new}'): create the new one and delete the old")
