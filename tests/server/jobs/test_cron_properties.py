"""Properties of the cron maths (``splice.server.jobs.triggers``), with hypothesis.

Expressions are generated from the documented grammar together with the values each field allows, worked out
here independently of the parser. For every generated expression and start moment, the next slot is strictly
after the start, on a whole minute, matches the expression on the zone's wall clock (or ends a DST gap), and no
matching minute lies between the start and it; the other searches agree with it. Any other text (and any
JSON-ish trigger) is refused with ``ScheduleError`` naming a documented field, never another exception.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from splice.server.jobs.triggers import (
    Cron,
    ScheduleError,
    count_between,
    last_at_or_before,
    next_after,
    parse_cron,
    trigger_from_dict,
)
from tests._hypothesis import budget

FIELDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
STEADY_ZONES = ["UTC", "Asia/Kolkata", "Etc/GMT+5", "Asia/Kathmandu"]  # one offset since 1990
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago", "Pacific/Chatham"]
DOCUMENTED_FIELDS = {"cron", "cron.minute", "cron.hour", "cron.day_of_month", "cron.month", "cron.day_of_week"}
START = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))


def _name(index: int, value: int, draw: st.DrawFn) -> str:
    if index == 3 and draw(st.booleans()):
        return draw(st.sampled_from([MONTHS[value - 1], MONTHS[value - 1].lower()]))
    if index == 4 and value < 7 and draw(st.booleans()):
        return draw(st.sampled_from([WEEKDAYS[value], WEEKDAYS[value].capitalize()]))
    return str(value)


@st.composite
def item(draw: st.DrawFn, index: int) -> tuple[str, set[int]]:
    """One list item of field ``index``, and the values it allows (7 still meaning Sunday)."""
    low, high = FIELDS[index]
    form = draw(st.sampled_from(["*", "*/n", "a", "a-b", "a-b/n", "a/n"]))
    step = draw(st.integers(1, high + 2))
    if form == "*":
        return "*", set(range(low, (6 if index == 4 else high) + 1))
    if form == "*/n":
        return f"*/{step}", set(range(low, (6 if index == 4 else high) + 1, step))
    first = draw(st.integers(low, high))
    if form == "a":
        return _name(index, first, draw), {first}
    if form == "a/n":
        return f"{_name(index, first, draw)}/{step}", set(range(first, high + 1, step))
    last = draw(st.integers(first, high))
    text = f"{_name(index, first, draw)}-{_name(index, last, draw)}"
    if form == "a-b":
        return text, set(range(first, last + 1))
    return f"{text}/{step}", set(range(first, last + 1, step))


@st.composite
def field(draw: st.DrawFn, index: int, frequent: bool) -> tuple[str, frozenset[int]]:
    if frequent and draw(st.booleans()):
        return "*", frozenset(range(FIELDS[index][0], (6 if index == 4 else FIELDS[index][1]) + 1))
    items = draw(st.lists(item(index), min_size=1, max_size=3))
    values = set().union(*(v for _, v in items))
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return ",".join(t for t, _ in items), frozenset(values)


class Expected:
    """What an expression allows, worked out from the generator, and the documented day rule."""

    def __init__(self, texts: list[str], sets: list[frozenset[int]]) -> None:
        self.text = " ".join(texts)
        self.minute, self.hour, self.dom, self.month, self.dow = sets
        self.either_day = not texts[2].startswith("*") and not texts[4].startswith("*")

    def day(self, day: date) -> bool:
        if day.month not in self.month:
            return False
        dom, dow = day.day in self.dom, day.isoweekday() % 7 in self.dow
        return (dom or dow) if self.either_day else (dom and dow)

    def wall(self, moment: datetime) -> bool:
        return moment.minute in self.minute and moment.hour in self.hour and self.day(moment.date())


@st.composite
def expressions(draw: st.DrawFn) -> Expected:
    frequent = draw(st.booleans())
    drawn = [draw(field(index, frequent)) for index in range(5)]
    expected = Expected([t for t, _ in drawn], [v for _, v in drawn])
    try:
        parse_cron(expected.text)
    except ScheduleError as exc:
        refusal = exc.message
    else:
        return expected
    assert "never matches" in refusal, refusal  # the one refusal of a generated expression
    assume(False)
    raise AssertionError("unreachable")


def _candidates(expected: Expected, zone: ZoneInfo, day: date) -> list[datetime]:
    """The UTC instants of every matching wall time of ``day`` that exists exactly once, or first of two."""
    out = []
    for hour in sorted(expected.hour):
        for minute in sorted(expected.minute):
            wall = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            first, second = wall.astimezone(UTC), wall.replace(fold=1).astimezone(UTC)
            if first <= second:  # exists (once, or twice: then its first occurrence always runs)
                out.append(first)
    return out


def _check_next(expected: Expected, zone_name: str, start: datetime) -> None:
    cron = Cron(expected.text, zone_name)
    zone = ZoneInfo(zone_name)
    found = next_after(cron, start)
    assert found is not None, f"{expected.text!r} has no slot after {start}"
    assert found > start
    assert found.tzinfo == UTC
    local = found.astimezone(zone)
    if expected.wall(local) and local.second == 0 and local.microsecond == 0:
        pass
    else:  # only the end of a spring-forward gap may run off the expression's wall times
        assert zone_name in DST_ZONES, f"{expected.text!r} after {start}: {found} ({local}) does not match"
        assert (found - timedelta(seconds=1)).astimezone(zone).utcoffset() != local.utcoffset(), (
            f"{expected.text!r} after {start}: {found} ({local}) neither matches nor ends a DST gap"
        )
    day, last = (start.astimezone(zone) - timedelta(days=1)).date(), local.date()
    while day <= last:
        if expected.day(day):
            skipped = [c for c in _candidates(expected, zone, day) if start < c < found]
            assert not skipped, f"{expected.text!r} in {zone_name} after {start}: next {found} skips {skipped[0]}"
        day += timedelta(days=1)
    assert last_at_or_before(cron, found) == found
    before = last_at_or_before(cron, found - timedelta(microseconds=1))
    assert before is None or before <= start
    assert count_between(cron, start, found) == 1


@given(expected=expressions(), start=START)
@example(expected=Expected(["0", "0", "29", "2", "*"], [frozenset({0}), frozenset({0}), frozenset({29}),
                                                        frozenset({2}), frozenset(range(7))]),
         start=datetime(2097, 3, 1, tzinfo=UTC))  # fmt: skip
@budget(400)
def test_the_next_slot_in_utc_matches_and_skips_nothing(expected: Expected, start: datetime) -> None:
    _check_next(expected, "UTC", start)


@given(expected=expressions(), start=START, zone=st.sampled_from(STEADY_ZONES + DST_ZONES))
@budget(300)
def test_the_next_slot_in_any_zone_matches_or_ends_a_gap_and_skips_nothing(
    expected: Expected, start: datetime, zone: str
) -> None:
    _check_next(expected, zone, start)


TOKENS = st.sampled_from(
    ["*", "/", "-", ",", " ", "\t", "\n", "0", "7", "59", "60", "31", "32", "12", "13", "JAN", "sun", "@daily",
     "@", "?", "L", "W", "#", "", "\x00", "é", "٣", "\uff11", "9" * 30, "1" * 5000]
)  # fmt: skip
TEXT = st.one_of(st.text(max_size=30), st.lists(TOKENS, max_size=14).map("".join))


@given(text=TEXT)
@example(text="1" * 5000 + " * * * *")  # int() of over 4300 digits raised a bare ValueError
@example(text="*/" + "9" * 5000 + " * * * *")
@example(text="0 0 1-" + "0" * 4999 + "1 * *")
@budget(500)
def test_any_text_parses_or_is_refused_naming_its_field(text: str) -> None:
    try:
        parse_cron(text)
    except ScheduleError as exc:  # anything else (IndexError, a bare ValueError...) fails the test by itself
        refusal = exc
    else:
        return
    assert type(refusal) is ScheduleError
    assert refusal.field in DOCUMENTED_FIELDS, refusal.field
    assert refusal.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | TOKENS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["kind", "weeks", "days", "hours", "minutes", "seconds", "start", "repeats", "expression", "timezone", "at", "x"]
)
VALUES = st.one_of(
    JSON,
    st.sampled_from(["interval", "cron", "once", "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "Europe/Berlin",
                     "../../etc/passwd", "UTC\x00", "9999-12-31T23:59:59-01:00", "*/5 * * * *"]),
    st.integers(min_value=-(10**30), max_value=10**30),
)  # fmt: skip
TRIGGER_FIELDS = DOCUMENTED_FIELDS | {"kind", "trigger", "interval", "start", "repeats", "timezone", "at"}
TRIGGER_FIELDS |= {f"interval.{unit}" for unit in ("weeks", "days", "hours", "minutes", "seconds")}


@given(data=st.one_of(JSON, st.dictionaries(KEYS, VALUES, max_size=5)))
@example(data={"kind": "interval", "start": "2026-01-01T00:00:00Z", "weeks": 10**30})
@example(data={"kind": "cron", "expression": "* * * * *", "timezone": "../../etc/passwd"})
@budget(500)
def test_any_json_trigger_is_read_or_refused_naming_its_field(data: Any) -> None:
    try:
        trigger = trigger_from_dict(data)
    except ScheduleError as exc:
        named = exc.field
    else:
        next_after(trigger, datetime(2026, 1, 1, tzinfo=UTC))
        return
    assert named in TRIGGER_FIELDS or (isinstance(data, dict) and named in data), named


@pytest.mark.parametrize("zone", ["", "UTC\x00", "../UTC", "/etc/localtime", "Europe/Nowhere", "a" * 300, "é"])
def test_a_bad_time_zone_is_refused_naming_it(zone: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Cron("* * * * *", zone)
    assert caught.value.field == "timezone"
