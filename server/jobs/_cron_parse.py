"""Cron expressions read into sets of allowed values: ``parse_cron`` and the ``CronSpec`` it returns.

Five fields (minute hour day-of-month month day-of-week) or a macro such as ``@daily``; the syntax, the
day rule and the DST rules are in the docstring of ``splice.server.jobs.triggers``, which re-exports both names.
Every problem raises ``ScheduleError`` naming the field (``cron``, ``cron.minute`` ... ``cron.day_of_week``),
and an expression that can never match is refused here, so the searches in ``_cron_search`` always end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from ._schedule_error import ScheduleError


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the values each field allows (weekdays 0-6, Sunday 0).

    ``dom_star``, ``dow_star`` and ``hour_star`` say the field started with ``*``: the first two choose
    Vixie's day rule, the last marks "every N minutes" jobs for DST (see ``splice.server.jobs.triggers``).
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
_TOO_MANY = 10**9


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
    number = _number(text)
    if not low <= number <= high:
        shown = str(number) if number < _TOO_MANY else f"{text[:12]}... ({len(text)} digits)"
        raise _field_error(index, f"{shown} is out of range {low}-{high}")
    return number


def _number(digits: str) -> int:
    """The number ``digits`` writes, or ``_TOO_MANY`` past nine significant digits: past any field's range, and
    ``int()`` refuses strings of over 4,300 digits with a bare ``ValueError``."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= 9 else _TOO_MANY


def _step(text: str, index: int) -> int:
    if not _DIGITS.fullmatch(text) or _number(text) < 1:
        raise _field_error(index, f"step {text[:20]!r} must be a whole number, 1 or more")
    return _number(text)


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
