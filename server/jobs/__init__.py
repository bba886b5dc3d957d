"""Scheduled jobs: what a job is (``JobSpec``, checked by ``parse_job``), the records of stored jobs and runs, the
scheduling maths (``triggers``, pure), and ``Jobs``, the manager behind the admin API, ``self.schedule`` and
declarations.

Pure but for ``Jobs``, which writes through a ``JobStore``: the ODB adapter (``splice.server.odb.JobRepository``)
implements it, so importing this package imports no database code. The scheduler process reads the same
records and maths from here.
"""

from __future__ import annotations

from .manager import SCHEDULER_LEASE, SCHEDULER_STATE_FILE, Jobs
from .records import Claim, Job, JobRun, RunOutcome
from .spec import MAX_BACKOFF, JobSpec, JobSpecError, first_due_us, from_us, iso_us, now_us, parse_job, to_us
from .store import JobStore
from .triggers import (
    Cron,
    Interval,
    OneTime,
    ScheduleError,
    Trigger,
    count_between,
    describe,
    first_at_or_after,
    last_at_or_before,
    next_after,
    trigger_from_dict,
    trigger_to_dict,
)

__all__ = [
    "MAX_BACKOFF",
    "SCHEDULER_LEASE",
    "SCHEDULER_STATE_FILE",
    "Claim",
    "Cron",
    "Interval",
    "Job",
    "JobRun",
    "JobSpec",
    "JobSpecError",
    "JobStore",
    "Jobs",
    "OneTime",
    "RunOutcome",
    "ScheduleError",
    "Trigger",
    "count_between",
    "describe",
    "first_at_or_after",
    "first_due_us",
    "from_us",
    "iso_us",
    "last_at_or_before",
    "next_after",
    "now_us",
    "parse_job",
    "to_us",
    "trigger_from_dict",
    "trigger_to_dict",
]
