"""Cron slot search: the first slot after, the last slot at or before, and the slots between moments.

A day whose UTC offset is the same from its first to its last second ("steady", nearly every day) maps
wall times to UTC by one subtraction, so the slot after or before a moment is found by bisection in the
sorted hours and minutes. The few days with a DST change list their slots one wall time at a time, by the
DST rules of ``splice.server.jobs.triggers`` (which calls these with checked, UTC moments). Days that cannot
match are skipped, whole months at a time, and every search is bounded (100 years).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING

from ._cron_parse import CronSpec

if TYPE_CHECKING:
    from .triggers import Cron

_ONE_DAY = timedelta(days=1)
_SEARCH_DAYS = 36_525  # 100 years: the longest gap between slots of a valid expression is 40 (Feb 29)


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


def cron_next_after(cron: Cron, moment: datetime) -> datetime | None:
    """The first slot strictly after ``moment``; ``None`` when there is none within 100 years."""
    # Start a day early: a wall time of the day before can fall after the moment around DST changes.
    first = _shift(_local_day(cron, moment), -1)
    for day in _days_forward(cron.spec, first, _shift(first, _SEARCH_DAYS)):
        slot = _first_in_day(cron, day, moment)
        if slot is not None:
            return slot
    return None


def cron_last_at_or_before(cron: Cron, moment: datetime) -> datetime | None:
    """The latest slot at or before ``moment``; ``None`` when there is none within 100 years."""
    first = _shift(_local_day(cron, moment), 1)
    for day in _days_backward(cron.spec, first, _shift(first, -_SEARCH_DAYS)):
        slot = _last_in_day(cron, day, moment)
        if slot is not None:
            return slot
    return None


def cron_count_between(cron: Cron, after: datetime, upto: datetime) -> int:
    """The number of slots s with ``after < s <= upto``, one step per day between the bounds."""
    first, last = _shift(_local_day(cron, after), -1), _shift(_local_day(cron, upto), 1)
    return sum(_count_in_day(cron, day, after, upto) for day in _days_forward(cron.spec, first, last))
