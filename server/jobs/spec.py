"""What a job is, checked, and the pure decisions about its runs (which slot, missed slots, retries).

A job arrives as JSON (admin API, ``splice job create``, ``self.schedule``, a declaration file)::

    {"name": "cleanup", "service": "accounts.cleanup", "payload": {"id": 7},
     "interval": 30}                                    # seconds, or {"minutes": 5, "seconds": 30}
     "cron": "*/5 * * * *", "timezone": "Europe/Berlin"  # or a five-field cron expression
     "at": "2026-11-21T10:00:00Z"  /  "in": 1800        # or one run at a moment, or in N seconds
     "trigger": {"kind": "interval", ...}                # or the stored form (``triggers.trigger_to_dict``)
     "start": ISO, "repeats": N                          # interval only: first run, number of runs
     "misfire": "run_once" | "skip", "retries": 0, "backoff": 1.0, "paused": false}

``parse_job`` turns it into a ``JobSpec`` or raises ``JobSpecError`` naming the field. Pure: the admin API,
``self.schedule`` and declarations check jobs with it, and the scheduler process reads stored jobs back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..core.errors import BadRequest
from ..core.naming import check_service_name
from .triggers import (
    Cron,
    Interval,
    OneTime,
    ScheduleError,
    Trigger,
    first_at_or_after,
    trigger_from_dict,
    trigger_to_dict,
)

MISFIRE_POLICIES = ("run_once", "skip")
MAX_RETRIES = 100
MAX_BACKOFF = 3600.0
FIELDS = frozenset(
    {
        "name",
        "service",
        "payload",
        "interval",
        "cron",
        "timezone",
        "at",
        "in",
        "trigger",
        "start",
        "repeats",
        "misfire",
        "retries",
        "backoff",
        "paused",
    }
)
_TRIGGER_KEYS = ("interval", "cron", "at", "in", "trigger")
_INTERVAL_UNITS = ("weeks", "days", "hours", "minutes", "seconds")


class JobSpecError(BadRequest):
    """A job definition is wrong; ``field`` names the part (``cron``, ``interval.minutes``, ``retries``...)."""

    code = "invalid_job"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "field": self.field}


@dataclass(frozen=True)
class JobSpec:
    """A job as a user asks for it, checked: which service, with which payload, when, and what to do on a miss."""

    name: str
    service: str
    trigger: Trigger
    payload: Any = None
    misfire: str = "run_once"
    retries: int = 0
    backoff: float = 1.0
    paused: bool = False

    def as_json(self) -> dict[str, Any]:
        """The job's definition with its trigger in the stored form: what ``parse_job`` reads back as this spec."""
        return {
            "name": self.name,
            "service": self.service,
            "payload": self.payload,
            "trigger": trigger_to_dict(self.trigger),
            "misfire": self.misfire,
            "retries": self.retries,
            "backoff": self.backoff,
            "paused": self.paused,
        }


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch: how the ODB keeps the scheduler's times, exactly."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def now_us() -> int:
    """The current time in microseconds since the epoch (the clock of the ODB's job and run times)."""
    return time.time_ns() // 1000


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def iso_us(value: int | None) -> str | None:
    return None if value is None else from_us(value).isoformat()


def first_due_us(trigger: Trigger, now: datetime) -> int | None:
    """The first slot a new, changed or resumed job runs at: none before ``now``."""
    slot = first_at_or_after(trigger, now)
    return None if slot is None else to_us(slot)


def parse_job(body: Mapping[str, Any], now: datetime, *, partial_of: JobSpec | None = None) -> JobSpec:
    """Check a job definition. With ``partial_of``, ``body`` changes that job: missing fields keep their values."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise JobSpecError(unknown[0], f"unknown field (a job has {', '.join(sorted(FIELDS))})")
    base = partial_of
    name = _text(body, "name", base.name if base else None)
    service = _text(body, "service", base.service if base else None)
    for key, value in (("name", name), ("service", service)):
        problem = check_service_name(value)
        if problem:
            raise JobSpecError(key, problem)
    if "/" in name:  # a job's name is a segment of its admin URL: /jobs/{name}/history
        raise JobSpecError("name", f"a job name may not hold '/': {name!r}")
    return JobSpec(
        name=name,
        service=service,
        trigger=_trigger(body, now, base.trigger if base else None),
        payload=body.get("payload", base.payload if base else None),
        misfire=_misfire(body, base.misfire if base else "run_once"),
        retries=_retries(body, base.retries if base else 0),
        backoff=_backoff(body, base.backoff if base else 1.0),
        paused=_flag(body, "paused", base.paused if base else False),
    )


def _text(body: Mapping[str, Any], key: str, default: str | None) -> str:
    value = body.get(key, default)
    if value is None:
        raise JobSpecError(key, "is required")
    if not isinstance(value, str):
        raise JobSpecError(key, f"must be a string, got {type(value).__name__}")
    return value


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JobSpecError(key, f"must be a number, got {value!r}")
    return float(value)


def _moment(value: Any, key: str) -> datetime:
    if not isinstance(value, str):
        raise JobSpecError(key, f"must be an ISO-8601 string such as 2026-11-21T10:00:00Z, got {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise JobSpecError(key, f"is not an ISO-8601 date and time: {value!r}") from None
    if moment.tzinfo is None:
        raise JobSpecError(key, f"needs a timezone (Z or +01:00, say): {value!r}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 falls in the year 0 in UTC
        raise JobSpecError(key, f"is out of range (years 1 to 9999 in UTC): {value!r}") from None


def _refuse(body: Mapping[str, Any], allowed: tuple[str, ...], why: str) -> None:
    """Refuse the trigger options (start, repeats, timezone) that do not go with the trigger given."""
    for key in ("start", "repeats", "timezone"):
        if key in body and key not in allowed:
            raise JobSpecError(key, why)


def _trigger(body: Mapping[str, Any], now: datetime, current: Trigger | None) -> Trigger:
    given = [key for key in _TRIGGER_KEYS if key in body]
    if len(given) > 1:
        raise JobSpecError(given[1], f"a job has one trigger: '{given[0]}' or '{given[1]}', not both")
    try:
        if not given:
            if current is None:
                raise JobSpecError("trigger", "is required: give 'interval', 'cron', 'at' or 'in'")
            return _retimed(body, current)
        kind = given[0]
        if kind == "trigger":
            return _stored(body)
        if kind == "cron":
            # A change of the expression alone keeps the job's timezone, as every field left out keeps its value.
            return _cron(body, current.timezone if isinstance(current, Cron) else "UTC")
        if kind in ("at", "in"):
            return _once(body, kind, now)
        return _interval(body, now)
    except ScheduleError as exc:
        where = getattr(exc, "field", "") or (given[0] if given else "trigger")
        raise JobSpecError(where, str(exc)) from None


def _stored(body: Mapping[str, Any]) -> Trigger:
    _refuse(body, (), "does not go with 'trigger': the trigger object holds its own start, repeats or timezone")
    if not isinstance(body["trigger"], dict):
        raise JobSpecError("trigger", f"must be an object, got {body['trigger']!r}")
    return trigger_from_dict(body["trigger"])


def _retimed(body: Mapping[str, Any], current: Trigger) -> Trigger:
    """A change that keeps the trigger but may move its start, repeats or timezone."""
    if isinstance(current, Interval):
        _refuse(body, ("start", "repeats"), "does not apply to this job's trigger (interval)")
        if "start" not in body and "repeats" not in body:
            return current
        return Interval(
            weeks=current.weeks,
            days=current.days,
            hours=current.hours,
            minutes=current.minutes,
            seconds=current.seconds,
            start=_moment(body["start"], "start") if "start" in body else current.start,
            repeats=_repeats(body) if "repeats" in body else current.repeats,
        )
    if isinstance(current, Cron):
        _refuse(body, ("timezone",), "does not apply to this job's trigger (cron)")
        return Cron(current.expression, _timezone(body, current.timezone)) if "timezone" in body else current
    _refuse(body, (), f"does not apply to this job's trigger ({type(current).__name__.lower()})")
    return current


def _timezone(body: Mapping[str, Any], default: str) -> str:
    timezone = body.get("timezone", default)
    if not isinstance(timezone, str):
        raise JobSpecError("timezone", f"must be a string such as 'Europe/Berlin', got {timezone!r}")
    return timezone


def _cron(body: Mapping[str, Any], default_timezone: str) -> Cron:
    expression = body["cron"]
    if not isinstance(expression, str):
        raise JobSpecError("cron", f"must be a string such as '*/5 * * * *', got {expression!r}")
    _refuse(body, ("timezone",), "applies to interval jobs only")
    return Cron(expression, _timezone(body, default_timezone))


def _once(body: Mapping[str, Any], kind: str, now: datetime) -> OneTime:
    _refuse(body, (), "applies to interval or cron jobs only")
    if kind == "at":
        return OneTime(_moment(body["at"], "at"))
    seconds = _number(body["in"], "in")
    if seconds < 0:
        raise JobSpecError("in", f"must be 0 or more seconds, got {seconds:g}")
    try:
        return OneTime(now + timedelta(seconds=seconds))
    except OverflowError:
        raise JobSpecError("in", f"is too far ahead: {seconds:g} seconds from now is after the year 9999") from None


def _units(raw: Any) -> dict[str, float]:
    """The units of an ``interval``: seconds as a number, or an object of units."""
    if not isinstance(raw, dict):
        return {"seconds": _number(raw, "interval")}
    units: dict[str, float] = {}
    for key, value in raw.items():
        if key not in _INTERVAL_UNITS:
            raise JobSpecError(f"interval.{key}", f"unknown unit (units: {', '.join(_INTERVAL_UNITS)})")
        units[key] = _number(value, f"interval.{key}")
        if units[key] < 0:
            raise JobSpecError(f"interval.{key}", f"must be 0 or more, got {units[key]:g}")
    return units


def _interval(body: Mapping[str, Any], now: datetime) -> Interval:
    units = _units(body["interval"])
    _refuse(body, ("start", "repeats"), "applies to cron jobs only (an interval is elapsed time)")
    try:
        period = timedelta(**{unit: units.get(unit, 0) for unit in _INTERVAL_UNITS})
    except OverflowError:
        raise JobSpecError("interval", "is too long (at most 999,999,999 days)") from None
    if period <= timedelta(0):
        raise JobSpecError("interval", "must be more than 0 seconds")
    if "start" in body:
        start = _moment(body["start"], "start")
    elif period > datetime.max.replace(tzinfo=UTC) - now:
        raise JobSpecError("interval", "is too long: its first run, one period from now, is after the year 9999")
    else:
        start = now + period
    whole = {key: int(value) for key, value in units.items() if key != "seconds"}
    if any(value != units[key] for key, value in whole.items()):
        # Fractions of weeks, days, hours or minutes: carry them into seconds.
        whole = {}
        seconds = period.total_seconds()
    else:
        seconds = units.get("seconds", 0.0)
    repeats = _repeats(body) if "repeats" in body else None
    return Interval(**whole, seconds=seconds, start=start, repeats=repeats)


def _repeats(body: Mapping[str, Any]) -> int | None:
    value = body["repeats"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise JobSpecError("repeats", f"must be a whole number of runs, 1 or more, got {value!r}")
    return value


def _misfire(body: Mapping[str, Any], default: str) -> str:
    value = body.get("misfire", default)
    if value not in MISFIRE_POLICIES:
        raise JobSpecError("misfire", f"must be one of {', '.join(MISFIRE_POLICIES)}, got {value!r}")
    return str(value)


def _retries(body: Mapping[str, Any], default: int) -> int:
    value = body.get("retries", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETRIES:
        raise JobSpecError("retries", f"must be a whole number from 0 to {MAX_RETRIES}, got {value!r}")
    return value


def _backoff(body: Mapping[str, Any], default: float) -> float:
    value = _number(body.get("backoff", default), "backoff")
    if not 0 < value <= MAX_BACKOFF:
        raise JobSpecError("backoff", f"must be more than 0 and at most {MAX_BACKOFF:g} seconds, got {value:g}")
    return value


def _flag(body: Mapping[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise JobSpecError(key, f"must be true or false, got {value!r}")
    return value
