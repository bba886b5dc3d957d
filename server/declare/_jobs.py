"""The ``[[jobs]]`` part of a declaration file: reading one item and comparing it with the stored job.

Pure, no I/O; ``declare`` calls these. An item is checked as ``splice.server.jobs.parse_job`` checks one, after
the checks only a file needs (no ``in``, no stored ``trigger``, a schedule, a payload JSON can carry), and is
compared with the stored job (a ``splice.server.jobs.Job``, in its JSON form) through the stored form of its
trigger; ``splice.server.declare.reader`` documents the format and re-exports ``JobDeclaration``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any

from ..jobs.spec import FIELDS as JOB_FIELDS
from ..jobs.spec import JobSpec, JobSpecError, parse_job
from ..jobs.triggers import Trigger, trigger_from_dict, trigger_to_dict

if TYPE_CHECKING:
    from .reader import _Reader

_CHECKED_AT = datetime(2100, 1, 1, tzinfo=UTC)
"""The moment declared jobs are checked and compared at (``parse_job`` needs one): nothing compared depends on
it. Late on purpose: an interval that fits in the calendar after it fits after any real now."""
_SCHEDULES = ("interval", "cron", "at")
_NOT_IN_FILES = {
    "in": "a file is applied again and again, so 'in' would move the run each time: give the moment with 'at'",
    "trigger": "is the stored form of a schedule: a file writes 'interval', 'cron' or 'at'",
}
_SCHEDULE_FIELD = {unit: "interval" for unit in ("weeks", "days", "hours", "minutes", "seconds")}
_SCHEDULE_FIELD["expression"] = "cron"


@dataclass(frozen=True)
class JobDeclaration:
    """A job as a file declares it: its definition, checked, and where it is in the file.

    It keeps the definition (``body``) rather than a ``JobSpec``: an interval without ``start`` starts one period
    after the job is written, so the spec is made when the file is applied (``Jobs.create``), and ``spec()``
    here only checks and compares.
    """

    name: str
    service: str
    body: Mapping[str, Any] = field(hash=False)
    """The job's fields as ``parse_job`` reads them (TOML dates and times of ``at``, ``start`` as text)."""
    where: str = field(default="", compare=False)
    lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False)

    def spec(self, now: datetime = _CHECKED_AT) -> JobSpec:
        """The checked job; ``now`` matters only to an interval without ``start`` (``declare.parse`` checked it)."""
        return parse_job(self.body, now)


def read_job(reader: _Reader) -> JobDeclaration | None:
    """The job of one ``[[jobs]]`` item, or ``None`` when ``reader`` collected a problem with it."""
    before = len(reader.problems)
    table = reader.table
    reader.only(JOB_FIELDS, "jobs")
    for key, message in _NOT_IN_FILES.items():
        if key in table:
            reader.problem(key, message)
    name = reader.name("name")
    service = reader.name("service")
    if not any(key in table for key in (*_SCHEDULES, *_NOT_IN_FILES)):
        reader.problem("", "needs a schedule: 'interval', 'cron' or 'at'")
    shaped = len(reader.problems) == before  # else parse_job would only repeat the first of these problems
    for path, message in _not_json(table.get("payload"), "payload"):
        reader.problem(path, message)
    # TOML has dates and times of its own; parse_job reads moments as ISO-8601 text.
    body = {
        key: value.isoformat() if isinstance(value, datetime | date | time) else value for key, value in table.items()
    }
    if shaped:
        try:
            parse_job(body, _CHECKED_AT)
        except JobSpecError as exc:
            reader.problem(exc.field, str(exc).removeprefix(f"{exc.field}: "))
        except OverflowError:
            reader.problem("interval" if "interval" in body else "", "is too long: a number in it is out of range")
    if len(reader.problems) > before or name is None or service is None:
        return None
    return JobDeclaration(name, service, body, reader.where, reader.lines)


def _not_json(value: object, path: str) -> list[tuple[str, str]]:
    """Where a TOML value has no JSON form (a payload is sent as JSON)."""
    if isinstance(value, dict):
        return [problem for key, item in value.items() for problem in _not_json(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [problem for index, item in enumerate(value) for problem in _not_json(item, f"{path}[{index}]")]
    if isinstance(value, datetime | date | time):
        return [(path, f'JSON has no dates or times: write it as a string, "{value.isoformat()}"')]
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, f"JSON has no {value}: write a finite number")]
    return []


def job_differs(job: JobDeclaration, current: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of ``job`` whose value differs from ``current``, the stored job of the same name in its JSON
    form (``Job.as_json``; a ``Job`` reads as that mapping), whose trigger may not even be readable any more."""
    wanted = job.spec()
    differs = ["service"] if current.get("service") != wanted.service else []
    differs += _schedule_differs(job, wanted.trigger, current.get("trigger"))
    differs += [] if _same_json(current.get("payload"), wanted.payload) else ["payload"]
    differs += [key for key in ("misfire", "retries", "backoff", "paused") if current.get(key) != getattr(wanted, key)]
    return tuple(differs)


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: ``true`` is not ``1`` (as it is in Python), ``1`` is ``1.0``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[key], b[key]) for key in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list) or isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _schedule_differs(job: JobDeclaration, wanted: Trigger, stored: Any) -> list[str]:
    """The file's fields (``cron``, ``timezone``, ``interval``, ``start``...) whose schedule differs from ``stored``.

    Both sides go through the stored form, so ``interval = 90`` and ``{ minutes = 1.5 }`` are the same.
    """
    given = next(key for key in _SCHEDULES if key in job.body)
    try:
        have = trigger_to_dict(trigger_from_dict(stored))
    except (ValueError, TypeError):
        return [given]
    want = trigger_to_dict(wanted)
    if want["kind"] != have["kind"]:
        return [given]
    if "start" not in job.body:
        # Then the start is one period after the job was written, different at every apply: not the file's.
        want.pop("start", None)
    fields = [_SCHEDULE_FIELD.get(key, key) for key, value in want.items() if have.get(key) != value]
    return list(dict.fromkeys(fields))
