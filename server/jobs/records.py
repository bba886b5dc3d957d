"""The records of stored jobs and their runs: what the ODB hands back, the scheduler claims and the edges show.

``JobSpec`` (``spec``) is what a user asks for; a ``Job`` is that spec once stored: its id, its origin and where
the scheduler is with it. A ``Claim`` is a slot the active scheduler takes (it becomes a run), a ``RunOutcome``
what came back of it, and a ``JobRun`` a run as the history keeps it. Times are microseconds since the epoch
(``spec.to_us``), exact in every ODB. Pure: no I/O, no SQLAlchemy; ``splice.server.odb.jobs`` makes them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.context import new_cid
from .spec import JobSpec, iso_us
from .triggers import describe


@dataclass(frozen=True)
class Job(Mapping[str, Any]):
    """A stored job.

    ``next_due_us``: its next slot (``None`` when paused, or when its trigger has no slot left);
    ``last_slot_us``: the last slot claimed; ``run_now_us``: when a run by hand was asked for and not yet claimed.

    A job also reads as its JSON form (``as_json``, a read-only mapping): ``declare.plan`` compares the jobs of a
    declaration file with stored ones in that form.
    """

    id: int
    spec: JobSpec
    origin: str
    next_due_us: int | None = None
    last_slot_us: int | None = None
    run_now_us: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def as_json(self) -> dict[str, Any]:
        """The job as the admin API and ``self.schedule`` answer it: its trigger stored form and in words."""
        return {
            "id": self.id,
            **self.spec.as_json(),
            "origin": self.origin,
            "next_run": iso_us(self.next_due_us),
            "last_slot": iso_us(self.last_slot_us),
            "run_now_requested": iso_us(self.run_now_us),
            "schedule": describe(self.spec.trigger),
        }

    @functools.cached_property
    def _view(self) -> dict[str, Any]:
        return self.as_json()

    def __getitem__(self, key: str) -> Any:
        return self._view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view)

    def __len__(self) -> int:
        return len(self._view)


@dataclass(frozen=True)
class Claim:
    """A slot the scheduler takes: the run row to insert and where the job goes next."""

    job_id: int
    job_name: str
    service: str
    slot_us: int
    kind: str
    """``scheduled`` (a slot of the trigger) or ``manual`` (run-now)."""
    status: str
    """``claimed`` (to be sent to a server at its slot; ``running`` once sent) or ``skipped`` (recorded only, with
    ``error`` saying why). A run is marked sent in the ODB just before its request goes out, so a scheduler that
    takes over sends the claimed runs its predecessor left unsent, and only marks the sent ones interrupted."""
    missed: int
    cid: str
    next_due_us: int | None
    expected_us: int | None
    """The job's ``next_due_us`` (or ``run_now_us`` for a manual run) as read: the claim holds only if unchanged."""
    error: str | None = None

    @classmethod
    def manual(cls, job: Job) -> Claim:
        """The run by hand asked for of ``job`` (its ``run_now_us`` is set), with a fresh cid."""
        at = job.run_now_us
        if at is None:
            raise ValueError(f"job '{job.name}' has no run asked for by hand")
        return cls(job.id, job.name, job.spec.service, at, "manual", "claimed", 0, new_cid(), None, at)

    @classmethod
    def scheduled(
        cls, job: Job, slot_us: int, next_due_us: int | None, *, run: bool, missed: int, reason: str = ""
    ) -> Claim:
        """Slot ``slot_us`` of ``job`` as read (due at its ``next_due_us``), run or skipped, with a fresh cid."""
        return cls(
            job.id,
            job.name,
            job.spec.service,
            slot_us,
            "scheduled",
            "claimed" if run else "skipped",
            missed,
            new_cid(),
            next_due_us,
            job.next_due_us,
            error=reason or None,
        )


@dataclass(frozen=True)
class RunOutcome:
    """What became of a claimed run (or of one attempt of it): recorded on the run by ``slot_us``."""

    job_id: int
    slot_us: int
    status: str
    """``ok``, ``failed``, ``retrying`` (failed, tried again) or ``interrupted`` (no outcome came back)."""
    attempts: int
    server: str | None = None
    error: str | None = None
    started_us: int | None = None
    finished_us: int | None = None


@dataclass(frozen=True)
class JobRun:
    """A run as the history keeps it."""

    id: int
    job: str
    """The job's name when the run was claimed."""
    service: str
    slot_us: int
    kind: str
    status: str
    attempts: int
    missed: int
    cid: str
    server: str | None
    scheduler: str
    error: str | None
    started_us: int | None
    finished_us: int | None

    def as_json(self) -> dict[str, Any]:
        """The run as the admin API's history answers it: moments in ISO-8601, lateness and duration in ms."""
        took = None
        if self.started_us is not None and self.finished_us is not None:
            took = round((self.finished_us - self.started_us) / 1000, 3)
        return {
            "id": self.id,
            "job": self.job,
            "service": self.service,
            "slot": iso_us(self.slot_us),
            "kind": self.kind,
            "status": self.status,
            "attempts": self.attempts,
            "missed": self.missed,
            "cid": self.cid,
            "server": self.server,
            "scheduler": self.scheduler,
            "error": self.error,
            "started": iso_us(self.started_us),
            "finished": iso_us(self.finished_us),
            "late_ms": None if self.started_us is None else round((self.started_us - self.slot_us) / 1000, 3),
            "took_ms": took,
        }
