"""The scheduling maths: when a trigger's runs ("slots") fall, as pure functions of a trigger and a moment.

A trigger is one of three frozen dataclasses; nothing here reads a clock, so the scheduler process passes
``now`` in. Every datetime returned is aware and in UTC; inputs may be aware in any zone, naive ones are
refused with ``ScheduleError``. Slots are strictly increasing in UTC for every trigger.

``Interval``
    Slot k is ``start + k * period`` for k = 0, 1, 2, ... (k < ``repeats`` when it is set). Elapsed time:
    a one-day interval is 86,400 s whatever the clocks do at a DST change. Seconds may be fractional
    (microsecond resolution); the period must be more than 0.

``Cron``
    Five fields, minute hour day-of-month month day-of-week, with ``*``, lists ``a,b``, ranges ``a-b``,
    steps ``*/n``, ``a-b/n`` and ``a/n`` (a to the end, step n), month and weekday names (JAN-DEC,
    SUN-SAT, any case), 0 or 7 for Sunday, and the macros @yearly (@annually), @monthly, @weekly, @daily
    (@midnight) and @hourly. Vixie cron's day rule: when day-of-month and day-of-week are both restricted,
    a day matches if either matches; a field counts as unrestricted when it starts with ``*`` (so
    ``*/2`` is unrestricted for this rule, as in Vixie cron and cronie). An expression that can never
    match (``0 0 30 2 *``) is refused when parsed, and every search is bounded (100 years).

    The fields are read on the wall clock of ``timezone`` (an IANA name, read with zoneinfo). DST, the
    way Vixie cron handles it:

    - A wall time that does not exist (spring forward) runs once, at the instant the gap ends (Europe/
      Berlin 2026-03-29 02:30 runs at 03:00 CEST = 01:00 UTC); several skipped times and a slot at the
      gap's end all run once, together. Jobs whose hour field starts with ``*`` (``*/15 * * * *``,
      ``0 * * * *``) are "every N minutes" jobs: the skipped wall times are simply not there, as the
      hour they fall in never happened, and the job keeps its elapsed spacing.
    - A wall time that occurs twice (fall back) runs once, at its first occurrence, except for jobs
      whose hour field starts with ``*``, which run in both occurrences of the repeated hour.

Searches for a cron slot go day by day over matching days only (other months are skipped whole) and
place the slot inside a day arithmetically, so a sparse expression or months of downtime cost
microseconds to a few milliseconds, never a walk minute by minute. ``count_between`` is exact and costs
one step per day between its bounds.

``OneTime``
    One slot, at ``at``.

``trigger_to_dict`` and ``trigger_from_dict`` give the JSON form kept in the ODB and used by the admin
API; ``ScheduleError.field`` names what was wrong: ``kind``, ``trigger``, ``interval`` (the period as a
whole), ``interval.weeks`` ... ``interval.seconds``, ``start``, ``repeats``, ``cron``, ``cron.minute``,
``cron.hour``, ``cron.day_of_month``, ``cron.month``, ``cron.day_of_week``, ``timezone``, ``at``, or
the name of the function argument (``moment``, ``after``, ``upto``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._cron_parse import CronSpec, parse_cron
from ._cron_search import cron_count_between, cron_last_at_or_before, cron_next_after
from ._schedule_error import ScheduleError

__all__ = [
    "Cron",
    "CronSpec",
    "Interval",
    "OneTime",
    "ScheduleError",
    "Trigger",
    "count_between",
    "describe",
    "first_at_or_after",
    "last_at_or_before",
    "next_after",
    "parse_cron",
    "trigger_from_dict",
    "trigger_to_dict",
]

_TICK = timedelta(microseconds=1)  # datetimes resolve microseconds: "> x - tick" is ">= x"


# ---------------------------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Interval:
    """Runs every ``period`` from ``start``; ``repeats`` is the total number of runs (``None``: forever)."""

    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: float = 0
    start: datetime = field(kw_only=True)
    repeats: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        for name in ("weeks", "days", "hours", "minutes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ScheduleError(
                    f"interval.{name}", f"interval {name} must be a whole number, 0 or more, got {value!r}"
                )
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float) or not self.seconds >= 0:
            raise ScheduleError(
                "interval.seconds", f"interval seconds must be a number, 0 or more, got {self.seconds!r}"
            )
        if not math.isfinite(self.seconds):
            raise ScheduleError("interval.seconds", f"interval seconds must be finite, got {self.seconds!r}")
        object.__setattr__(self, "start", _aware(self.start, "start"))
        if self.repeats is not None and (
            isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1
        ):
            raise ScheduleError("repeats", f"repeats must be a whole number of runs, 1 or more, got {self.repeats!r}")
        try:
            period = self.period
        except OverflowError:
            raise ScheduleError("interval", "interval is too long (more than 999,999,999 days)") from None
        if period <= timedelta(0):
            raise ScheduleError("interval", "interval must be more than 0 (at least one microsecond)")

    @property
    def period(self) -> timedelta:
        return timedelta(weeks=self.weeks, days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds)


@dataclass(frozen=True)
class Cron:
    """Runs when the wall clock of ``timezone`` matches ``expression``; both are checked on construction.

    ``spec`` and ``zone`` are the parsed expression and the loaded timezone.
    """

    expression: str
    timezone: str = "UTC"
    spec: CronSpec = field(init=False, repr=False, compare=False)
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", parse_cron(self.expression))
        object.__setattr__(self, "zone", _load_zone(self.timezone))


@dataclass(frozen=True)
class OneTime:
    """Runs once, at ``at``."""

    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _aware(self.at, "at"))


Trigger: TypeAlias = Interval | Cron | OneTime


def _aware(moment: object, name: str) -> datetime:
    if not isinstance(moment, datetime):
        raise ScheduleError(name, f"{name} must be a datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ScheduleError(name, f"{name} must be an aware datetime (with a timezone), got naive {moment}")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is a year 0 in UTC
        raise ScheduleError(name, f"{name} {moment.isoformat()} is out of range in UTC (years 1 to 9999)") from None


def _load_zone(name: object) -> ZoneInfo:
    if not isinstance(name, str):
        raise ScheduleError("timezone", f"timezone must be an IANA name such as 'Europe/Berlin', got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError("timezone", f"unknown timezone {name!r} (an IANA name such as 'Europe/Berlin')") from None


def _check_trigger(trigger: object) -> None:
    if not isinstance(trigger, Interval | Cron | OneTime):
        raise TypeError(f"not a trigger (Interval, Cron or OneTime): {trigger!r}")


# ------------------------------------------------------------------------------------------------- slots


def _interval_runs_up_to(interval: Interval, moment: datetime) -> int:
    """How many slots are at or before ``moment``: also the index of the first slot after it."""
    if moment < interval.start:
        return 0
    runs = (moment - interval.start) // interval.period + 1
    return runs if interval.repeats is None else min(runs, interval.repeats)


def _interval_slot(interval: Interval, index: int) -> datetime | None:
    if interval.repeats is not None and index >= interval.repeats:
        return None
    try:
        return interval.start + interval.period * index
    except OverflowError:
        return None


def next_after(trigger: Trigger, moment: datetime) -> datetime | None:
    """The first slot strictly after ``moment``; ``None`` when there is none (repeats used up, once passed)."""
    _check_trigger(trigger)
    moment = _aware(moment, "moment")
    if isinstance(trigger, Interval):
        return _interval_slot(trigger, _interval_runs_up_to(trigger, moment))
    if isinstance(trigger, Cron):
        return cron_next_after(trigger, moment)
    return trigger.at if trigger.at > moment else None


def first_at_or_after(trigger: Trigger, moment: datetime) -> datetime | None:
    """The first slot at or after ``moment``; ``None`` when there is none."""
    return next_after(trigger, _aware(moment, "moment") - _TICK)


def last_at_or_before(trigger: Trigger, moment: datetime) -> datetime | None:
    """The latest slot at or before ``moment``; ``None`` when there is none yet (or within 100 years, cron)."""
    _check_trigger(trigger)
    moment = _aware(moment, "moment")
    if isinstance(trigger, Interval):
        runs = _interval_runs_up_to(trigger, moment)
        return _interval_slot(trigger, runs - 1) if runs else None
    if isinstance(trigger, Cron):
        return cron_last_at_or_before(trigger, moment)
    return trigger.at if trigger.at <= moment else None


def count_between(trigger: Trigger, after: datetime, upto: datetime) -> int:
    """The number of slots s with ``after < s <= upto`` (0 when ``upto <= after``).

    Arithmetic for intervals; one step per day between the bounds for cron (a year costs about 1 ms).
    """
    _check_trigger(trigger)
    after, upto = _aware(after, "after"), _aware(upto, "upto")
    if upto <= after:
        return 0
    if isinstance(trigger, Interval):
        return _interval_runs_up_to(trigger, upto) - _interval_runs_up_to(trigger, after)
    if isinstance(trigger, Cron):
        return cron_count_between(trigger, after, upto)
    return 1 if after < trigger.at <= upto else 0


# ---------------------------------------------------------------------------------------- text and JSON


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def describe(trigger: Trigger) -> str:
    """A short human text: ``every 30 s from 2026-11-21 10:00:00+00:00 (5 runs)``, ``cron '*/5 * * * *'
    (Europe/Berlin)``, ``once at 2026-11-21 10:00:00+00:00``."""
    _check_trigger(trigger)
    if isinstance(trigger, Interval):
        units = (("w", trigger.weeks), ("d", trigger.days), ("h", trigger.hours), ("min", trigger.minutes))
        parts = [f"{value} {unit}" for unit, value in units if value]
        if trigger.seconds or not parts:
            parts.append(f"{_number(trigger.seconds)} s")
        text = f"every {' '.join(parts)} from {trigger.start}"
        if trigger.repeats is not None:
            text += f" ({trigger.repeats} run{'s' if trigger.repeats != 1 else ''})"
        return text
    if isinstance(trigger, Cron):
        return f"cron {trigger.expression!r} ({trigger.timezone})"
    return f"once at {trigger.at}"


def trigger_to_dict(trigger: Trigger) -> dict[str, Any]:
    """The JSON form of a trigger, as ``trigger_from_dict`` reads it back."""
    _check_trigger(trigger)
    if isinstance(trigger, Interval):
        return {
            "kind": "interval",
            "weeks": trigger.weeks,
            "days": trigger.days,
            "hours": trigger.hours,
            "minutes": trigger.minutes,
            "seconds": trigger.seconds,
            "start": trigger.start.isoformat(),
            "repeats": trigger.repeats,
        }
    if isinstance(trigger, Cron):
        return {"kind": "cron", "expression": trigger.expression, "timezone": trigger.timezone}
    return {"kind": "once", "at": trigger.at.isoformat()}


def _parse_moment(value: object, name: str) -> datetime:
    """An aware datetime from an ISO-8601 string (a trailing 'Z' is UTC); a string without offset is refused."""
    if isinstance(value, datetime):
        return _aware(value, name)
    if not isinstance(value, str):
        raise ScheduleError(
            name, f"{name} must be an ISO-8601 date and time such as '2026-11-21T10:00:00Z', got {value!r}"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ScheduleError(
            name, f"{name} {value!r} is not an ISO-8601 date and time such as '2026-11-21T10:00:00Z'"
        ) from None
    if moment.tzinfo is None:
        raise ScheduleError(name, f"{name} {value!r} has no UTC offset; add one, such as 'Z' or '+01:00'")
    return moment


_KEYS = {
    "interval": ("kind", "weeks", "days", "hours", "minutes", "seconds", "start", "repeats"),
    "cron": ("kind", "expression", "timezone"),
    "once": ("kind", "at"),
}
_REQUIRED = {"interval": ("start", "start"), "cron": ("expression", "cron"), "once": ("at", "at")}  # key, field
_ARTICLE = {"interval": "an", "cron": "a", "once": "a"}


def _check_keys(data: Mapping[str, Any], kind: str) -> None:
    unknown = sorted(str(key) for key in data if key not in _KEYS[kind])
    if unknown:
        known = ", ".join(_KEYS[kind])
        raise ScheduleError(
            unknown[0], f"unknown key {unknown[0]!r} for {_ARTICLE[kind]} {kind} trigger (keys: {known})"
        )
    required, name = _REQUIRED[kind]
    if required not in data:
        raise ScheduleError(name, f"{_ARTICLE[kind]} {kind} trigger needs {required!r}")


def trigger_from_dict(data: Mapping[str, Any]) -> Trigger:
    """Read the JSON form of ``trigger_to_dict`` back, checking it; raise ``ScheduleError`` naming the field."""
    if not isinstance(data, Mapping):
        raise ScheduleError("trigger", f"a trigger must be an object with a 'kind', got {data!r}")
    kind = data.get("kind")
    if not isinstance(kind, str) or kind not in _KEYS:  # not a str: a list would not even hash
        kinds = ", ".join(_KEYS)
        what = "is missing" if kind is None else f"{kind!r} is unknown"
        raise ScheduleError("kind", f"trigger kind {what} (kinds: {kinds})")
    _check_keys(data, kind)
    if kind == "interval":
        units = {unit: data[unit] for unit in ("weeks", "days", "hours", "minutes", "seconds") if unit in data}
        start = _parse_moment(data["start"], "start")
        return Interval(**units, start=start, repeats=data.get("repeats"))
    if kind == "cron":
        return Cron(data["expression"], data.get("timezone", "UTC"))
    return OneTime(_parse_moment(data["at"], "at"))
