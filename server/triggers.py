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
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cached_property, lru_cache
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import BadRequest

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

_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)  # datetimes resolve microseconds: "> x - tick" is ">= x"
_SEARCH_DAYS = 36_525  # 100 years: the longest gap between slots of a valid expression is 40 (Feb 29)


class ScheduleError(BadRequest, ValueError):
    """A trigger or its input is wrong; ``field`` names the part (see the module docstring for the names)."""

    code = "invalid_schedule"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "field": self.field}


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
class CronSpec:
    """A parsed cron expression: the values each field allows (weekdays 0-6, Sunday 0).

    ``dom_star``, ``dow_star`` and ``hour_star`` say the field started with ``*``: the first two choose
    Vixie's day rule, the last marks "every N minutes" jobs for DST (see the module docstring).
    """

    minute: frozenset[int]
    hour: frozenset[int]
    day_of_month: frozenset[int]
    month: frozenset[int]
    day_of_week: frozenset[int]
    dom_star: bool
    dow_star: bool
    hour_star: bool

    @cached_property
    def minutes(self) -> tuple[int, ...]:
        return tuple(sorted(self.minute))

    @cached_property
    def hours(self) -> tuple[int, ...]:
        return tuple(sorted(self.hour))

    @cached_property
    def per_day(self) -> int:
        return len(self.minute) * len(self.hour)

    def matches_day(self, day: date) -> bool:
        if day.month not in self.month:
            return False
        dom = day.day in self.day_of_month
        dow = day.isoweekday() % 7 in self.day_of_week
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow


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


# ------------------------------------------------------------------------------------------- cron parsing

_FIELDS = (
    ("minute", "cron.minute", 0, 59),
    ("hour", "cron.hour", 0, 23),
    ("day-of-month", "cron.day_of_month", 1, 31),
    ("month", "cron.month", 1, 12),
    ("day-of-week", "cron.day_of_week", 0, 7),
)
_ORDINALS = ("1st", "2nd", "3rd", "4th", "5th")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES: dict[int, dict[str, int]] = {
    3: {name: number for number, name in enumerate(_MONTHS, 1)},
    4: {name: number for number, name in enumerate(_WEEKDAYS)},
}
_NAME_HINTS = {3: "a month name (JAN-DEC)", 4: "a weekday name (SUN-SAT)"}
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # the most a month can have
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DIGITS = re.compile(r"[0-9]+")


def _field_error(index: int, message: str) -> ScheduleError:
    name, path, _, _ = _FIELDS[index]
    return ScheduleError(path, f"cron field '{name}' ({_ORDINALS[index]}): {message}")


def _value(text: str, index: int) -> int:
    _, _, low, high = _FIELDS[index]
    names = _NAMES.get(index, {})
    if text.upper() in names:
        return names[text.upper()]
    if not _DIGITS.fullmatch(text):
        hint = f"a number or {_NAME_HINTS[index]}" if index in _NAME_HINTS else "a number"
        raise _field_error(index, f"{text!r} is not {hint}")
    number = int(text)
    if not low <= number <= high:
        raise _field_error(index, f"{number} is out of range {low}-{high}")
    return number


def _step(text: str, index: int) -> int:
    if not _DIGITS.fullmatch(text) or int(text) < 1:
        raise _field_error(index, f"step {text!r} must be a whole number, 1 or more")
    return int(text)


def _parse_item(item: str, index: int) -> range:
    _, _, low, high = _FIELDS[index]
    if not item:
        raise _field_error(index, "has an empty list item (a stray comma)")
    base, slash, step_text = item.partition("/")
    step = _step(step_text, index) if slash else 1
    if base == "*":
        return range(low, (6 if index == 4 else high) + 1, step)
    first_text, dash, last_text = base.partition("-")
    first = _value(first_text, index)
    last = _value(last_text, index) if dash else (high if slash else first)
    if first > last:
        raise _field_error(index, f"range {base!r} runs backwards (write the lower bound first)")
    return range(first, last + 1, step)


def _parse_field(text: str, index: int) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, index))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _listed(values: frozenset[int]) -> str:
    return ",".join(str(value) for value in sorted(values))


def parse_cron(expression: str) -> CronSpec:
    """Parse a five-field cron expression or a macro; raise ``ScheduleError`` naming the bad field."""
    if not isinstance(expression, str):
        raise ScheduleError("cron", f"cron expression must be a string such as '*/5 * * * *', got {expression!r}")
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in _MACROS:
            known = ", ".join(_MACROS)
            raise ScheduleError("cron", f"unknown cron macro {text!r} (known: {known})")
        text = _MACROS[text.lower()]
    fields = text.split()
    if len(fields) != len(_FIELDS):
        raise ScheduleError(
            "cron",
            f"cron expression {expression!r} has {len(fields)} fields; it needs 5: "
            "minute hour day-of-month month day-of-week",
        )
    minute, hour, day_of_month, month, day_of_week = (_parse_field(part, index) for index, part in enumerate(fields))
    spec = CronSpec(
        minute,
        hour,
        day_of_month,
        month,
        day_of_week,
        dom_star=fields[2].startswith("*"),
        dow_star=fields[4].startswith("*"),
        hour_star=fields[1].startswith("*"),
    )
    restricted_by_date = spec.dom_star or spec.dow_star  # else any weekday in any month will do
    if restricted_by_date and not any(day <= _DAYS_IN_MONTH[m - 1] for m in spec.month for day in spec.day_of_month):
        raise ScheduleError(
            "cron",
            f"cron expression {expression!r} never matches: day-of-month {_listed(spec.day_of_month)} "
            f"does not occur in month {_listed(spec.month)}",
        )
    return spec


# ---------------------------------------------------------------------------------------- cron searching
#
# A day whose UTC offset is the same from its first to its last second ("steady", nearly every day) maps
# wall times to UTC by one subtraction, so the slot after or before a moment is found by bisection in the
# sorted hours and minutes. The few days with a DST change list their slots one wall time at a time.


@lru_cache(maxsize=4096)
def _steady_offset(zone: tzinfo, day: date) -> timedelta | None:
    """The day's single UTC offset, or ``None`` when the offset changes during the day."""
    offsets = set()
    for clock in (time(0), time(12), time(23, 59, 59)):
        wall = datetime.combine(day, clock, tzinfo=zone)
        offsets.add(wall.utcoffset())
        offsets.add(wall.replace(fold=1).utcoffset())
    offset = offsets.pop()
    return offset if not offsets else None


def _gap_end(zone: tzinfo, before: datetime, after: datetime) -> datetime:
    """The UTC instant a spring-forward gap ends: the first second in (before, after] on the new offset."""
    old = before.astimezone(zone).utcoffset()
    low, high = 0, int((after - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        if (before + timedelta(seconds=middle)).astimezone(zone).utcoffset() == old:
            low = middle
        else:
            high = middle
    return before + timedelta(seconds=high)


def _wall_slot(spec: CronSpec, zone: tzinfo, wall: datetime) -> tuple[datetime, ...]:
    """The UTC slots of one matching wall time (in a zone), by the DST rules of the module docstring."""
    first = wall.astimezone(UTC)
    second = wall.replace(fold=1).astimezone(UTC)
    if first == second:
        return (first,)
    if first < second:  # repeated: fold 0 is the first occurrence
        return (first, second) if spec.hour_star else (first,)
    if spec.hour_star:  # skipped, and the job is an "every N minutes" one
        return ()
    end = _gap_end(zone, second, first)
    local = end.astimezone(zone)
    if local.date() != wall.date() and _is_slot_wall(spec, local):
        return ()  # the gap ends at a slot of the next day, which lists it
    return (end,)


def _is_slot_wall(spec: CronSpec, local: datetime) -> bool:
    on_minute = local.second == 0 and local.microsecond == 0
    return on_minute and local.minute in spec.minute and local.hour in spec.hour and spec.matches_day(local.date())


@lru_cache(maxsize=256)
def _changing_day_slots(spec: CronSpec, zone: tzinfo, day: date) -> tuple[datetime, ...]:
    """The sorted UTC slots of a matching day on which the UTC offset changes."""
    slots: set[datetime] = set()
    for hour in spec.hours:
        for minute in spec.minutes:
            slots.update(_wall_slot(spec, zone, datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)))
    return tuple(sorted(slots))


def _slot(day: date, pair: tuple[int, int], offset: timedelta) -> datetime:
    return datetime(day.year, day.month, day.day, pair[0], pair[1], tzinfo=UTC) - offset


def _wall(moment: datetime, offset: timedelta) -> datetime:
    """The naive wall-clock reading of a UTC moment at a fixed offset."""
    return (moment + offset).replace(tzinfo=None)


def _pair_after(spec: CronSpec, clock: time) -> tuple[int, int] | None:
    """The first (hour, minute) of the spec strictly after ``clock`` within a day."""
    if clock.hour in spec.hour:
        index = bisect_right(spec.minutes, clock.minute)
        if index < len(spec.minutes):
            return clock.hour, spec.minutes[index]
    index = bisect_right(spec.hours, clock.hour)
    return (spec.hours[index], spec.minutes[0]) if index < len(spec.hours) else None


def _pair_at_or_before(spec: CronSpec, clock: time) -> tuple[int, int] | None:
    """The last (hour, minute) of the spec at or before ``clock`` within a day."""
    if clock.hour in spec.hour:
        index = bisect_right(spec.minutes, clock.minute)
        if index > 0:
            return clock.hour, spec.minutes[index - 1]
    index = bisect_left(spec.hours, clock.hour)
    return (spec.hours[index - 1], spec.minutes[-1]) if index > 0 else None


def _pairs_up_to(spec: CronSpec, day: date, wall: datetime) -> int:
    """How many of the day's wall times are at or before ``wall``."""
    if wall.date() != day:
        return 0 if wall.date() < day else spec.per_day
    count = bisect_left(spec.hours, wall.hour) * len(spec.minutes)
    if wall.hour in spec.hour:
        count += bisect_right(spec.minutes, wall.minute)
    return count


def _first_in_day(cron: Cron, day: date, moment: datetime) -> datetime | None:
    offset = _steady_offset(cron.zone, day)
    if offset is None:
        return next((slot for slot in _changing_day_slots(cron.spec, cron.zone, day) if slot > moment), None)
    wall = _wall(moment, offset)
    if wall.date() > day:
        return None
    spec = cron.spec
    pair = (spec.hours[0], spec.minutes[0]) if wall.date() < day else _pair_after(spec, wall.time())
    return None if pair is None else _slot(day, pair, offset)


def _last_in_day(cron: Cron, day: date, moment: datetime) -> datetime | None:
    offset = _steady_offset(cron.zone, day)
    if offset is None:
        slots = _changing_day_slots(cron.spec, cron.zone, day)
        return next((slot for slot in reversed(slots) if slot <= moment), None)
    wall = _wall(moment, offset)
    if wall.date() < day:
        return None
    spec = cron.spec
    pair = (spec.hours[-1], spec.minutes[-1]) if wall.date() > day else _pair_at_or_before(spec, wall.time())
    return None if pair is None else _slot(day, pair, offset)


def _count_in_day(cron: Cron, day: date, after: datetime, upto: datetime) -> int:
    offset = _steady_offset(cron.zone, day)
    if offset is None:
        return sum(1 for slot in _changing_day_slots(cron.spec, cron.zone, day) if after < slot <= upto)
    return _pairs_up_to(cron.spec, day, _wall(upto, offset)) - _pairs_up_to(cron.spec, day, _wall(after, offset))


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _days_forward(spec: CronSpec, first: date, last: date) -> Iterator[date]:
    """The matching days from ``first`` to ``last``, skipping months that cannot match."""
    day, last = first, min(last, date.max - _ONE_DAY)
    while day <= last:
        if day.month in spec.month:
            if spec.matches_day(day):
                yield day
            day += _ONE_DAY
        elif day.year == date.max.year and day.month == 12:
            return
        else:
            day = date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _days_backward(spec: CronSpec, first: date, last: date) -> Iterator[date]:
    """The matching days from ``first`` back to ``last``, skipping months that cannot match."""
    day, last = first, max(last, date.min + _ONE_DAY)
    while day >= last:
        if day.month in spec.month:
            if spec.matches_day(day):
                yield day
            day -= _ONE_DAY
        elif day.year == date.min.year and day.month == 1:
            return
        else:
            day = day.replace(day=1) - _ONE_DAY


def _local_day(cron: Cron, moment: datetime) -> date:
    return moment.astimezone(cron.zone).date()


def _cron_next_after(cron: Cron, moment: datetime) -> datetime | None:
    # Start a day early: a wall time of the day before can fall after the moment around DST changes.
    first = _shift(_local_day(cron, moment), -1)
    for day in _days_forward(cron.spec, first, _shift(first, _SEARCH_DAYS)):
        slot = _first_in_day(cron, day, moment)
        if slot is not None:
            return slot
    return None


def _cron_last_at_or_before(cron: Cron, moment: datetime) -> datetime | None:
    first = _shift(_local_day(cron, moment), 1)
    for day in _days_backward(cron.spec, first, _shift(first, -_SEARCH_DAYS)):
        slot = _last_in_day(cron, day, moment)
        if slot is not None:
            return slot
    return None


def _cron_count_between(cron: Cron, after: datetime, upto: datetime) -> int:
    first, last = _shift(_local_day(cron, after), -1), _shift(_local_day(cron, upto), 1)
    return sum(_count_in_day(cron, day, after, upto) for day in _days_forward(cron.spec, first, last))


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
        return _cron_next_after(trigger, moment)
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
        return _cron_last_at_or_before(trigger, moment)
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
        return _cron_count_between(trigger, after, upto)
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
