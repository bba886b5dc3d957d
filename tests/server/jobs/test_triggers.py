"""The scheduling maths: cron parsing, slots of each trigger, DST, counting, and the JSON form."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from splice.server.core.errors import BadRequest
from splice.server.http.responses import http_status
from splice.server.jobs.triggers import (
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
    parse_cron,
    trigger_from_dict,
    trigger_to_dict,
)

TICK = timedelta(microseconds=1)
START = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
BERLIN_NOON = datetime(2026, 3, 28, 12, tzinfo=ZoneInfo("Europe/Berlin"))  # 11:00 UTC, the day before DST


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def slots(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` slots after ``after``, by chaining ``next_after``."""
    found: list[datetime] = []
    slot = next_after(trigger, after)
    while slot is not None and len(found) < count:
        found.append(slot)
        slot = next_after(trigger, slot)
    return found


# ------------------------------------------------------------------------------------------- parse_cron


@pytest.mark.parametrize(
    ("expression", "field", "expected"),
    [
        ("*/15 * * * *", "minute", {0, 15, 30, 45}),
        ("5,10-12 * * * *", "minute", {5, 10, 11, 12}),
        ("10-30/10 * * * *", "minute", {10, 20, 30}),
        ("50/4 * * * *", "minute", {50, 54, 58}),
        ("05 * * * *", "minute", {5}),
        ("* 9-17/4 * * *", "hour", {9, 13, 17}),
        ("* * 1,15,31 * *", "day_of_month", {1, 15, 31}),
        ("* * */10 * *", "day_of_month", {1, 11, 21, 31}),
        ("* * * JAN,jul-Sep *", "month", {1, 7, 8, 9}),
        ("* * * */5 *", "month", {1, 6, 11}),
        ("* * * * 0", "day_of_week", {0}),
        ("* * * * 7", "day_of_week", {0}),
        ("* * * * MON-FRI", "day_of_week", {1, 2, 3, 4, 5}),
        ("* * * * fri-7", "day_of_week", {0, 5, 6}),
        ("* * * * */2", "day_of_week", {0, 2, 4, 6}),
    ],
)
def test_parse_cron_field_forms(expression: str, field: str, expected: set[int]) -> None:
    assert getattr(parse_cron(expression), field) == expected


@pytest.mark.parametrize(
    ("macro", "expansion"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("  @hourly ", "0 * * * *"),
    ],
)
def test_parse_cron_macros(macro: str, expansion: str) -> None:
    assert parse_cron(macro) == parse_cron(expansion)


@pytest.mark.parametrize(
    ("expression", "field", "message"),
    [
        ("60 * * * *", "cron.minute", "60 is out of range 0-59"),
        ("* 24 * * *", "cron.hour", "24 is out of range 0-23"),
        ("* * 0 * *", "cron.day_of_month", "0 is out of range 1-31"),
        ("* * * 13 *", "cron.month", "13 is out of range 1-12"),
        ("* * * * 8", "cron.day_of_week", "8 is out of range 0-7"),
        ("*/0 * * * *", "cron.minute", "step '0'"),
        ("* */x * * *", "cron.hour", "step 'x'"),
        ("1/2/3 * * * *", "cron.minute", "step '2/3'"),
        ("5-3 * * * *", "cron.minute", "runs backwards"),
        ("-1 * * * *", "cron.minute", "is not a number"),
        ("1,,2 * * * *", "cron.minute", "stray comma"),
        ("MON * * * *", "cron.minute", "'MON' is not a number"),
        ("* * L * *", "cron.day_of_month", "'L' is not a number"),
        ("* * * JANUARY *", "cron.month", "a month name (JAN-DEC)"),
        ("* * * * MONDAY", "cron.day_of_week", "a weekday name (SUN-SAT)"),
        ("* * * * 1#2", "cron.day_of_week", "'1#2'"),
        ("", "cron", "has 0 fields"),
        ("* * * *", "cron", "has 4 fields"),
        ("* * * * * *", "cron", "has 6 fields"),
        ("@reboot", "cron", "unknown cron macro '@reboot'"),
        ("0 0 30 2 *", "cron", "never matches"),
        ("0 0 31 4,6,9,11 *", "cron", "never matches"),
        ("0 0 30 2 */2", "cron", "never matches"),  # '*/2' counts as unrestricted: the AND rule holds
        (None, "cron", "must be a string"),
        (["*"] * 5, "cron", "must be a string"),
    ],
)
def test_parse_cron_errors_name_the_field(expression: Any, field: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron(expression)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_schedule_error_is_a_bad_request_with_its_field() -> None:
    with pytest.raises(ScheduleError) as caught:
        Cron("61 * * * *")
    assert isinstance(caught.value, BadRequest)
    assert isinstance(caught.value, ValueError)
    assert http_status(caught.value) == 400  # the HTTP edge maps the error's code
    assert caught.value.as_dict()["field"] == "cron.minute"
    assert caught.value.as_dict()["code"] == "invalid_schedule"


# ----------------------------------------------------------------------------------------- cron slots


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/15 * * * *", utc(2026, 1, 1, 10, 7, 30), [utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)]),
        ("*/15 * * * *", utc(2026, 1, 1, 10, 15), [utc(2026, 1, 1, 10, 30), utc(2026, 1, 1, 10, 45)]),  # strictly
        ("0 0 29 2 *", utc(2026, 3, 1), [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)]),
        ("0 0 31 * *", utc(2026, 1, 31), [utc(2026, 3, 31), utc(2026, 5, 31), utc(2026, 7, 31)]),
        ("@yearly", utc(2026, 6, 1), [utc(2027, 1, 1), utc(2028, 1, 1)]),
        ("30 8 * JUN-AUG MON-FRI", utc(2026, 5, 29, 9), [utc(2026, 6, 1, 8, 30), utc(2026, 6, 2, 8, 30)]),
        ("0 9 * * 7", utc(2026, 1, 3, 12), [utc(2026, 1, 4, 9), utc(2026, 1, 11, 9)]),
        # Vixie: both day fields restricted, so a day matches either (13 Feb 2026 is a Friday, not a Monday).
        ("0 12 13 * MON", utc(2026, 2, 1), [utc(2026, 2, 2, 12), utc(2026, 2, 9, 12), utc(2026, 2, 13, 12)]),
        ("0 0 30 2 MON", utc(2026, 3, 1), [utc(2027, 2, 1), utc(2027, 2, 8)]),  # never the 30th: Mondays only
        # A field starting with '*' is unrestricted for the rule, so both must match.
        ("0 12 */10 * MON", utc(2026, 1, 1), [utc(2026, 5, 11, 12), utc(2026, 6, 1, 12), utc(2026, 8, 31, 12)]),
        ("0 0 1 * */2", utc(2026, 1, 2), [utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 8, 1)]),
    ],
)
def test_cron_next_slots(expression: str, after: datetime, expected: list[datetime]) -> None:
    assert slots(Cron(expression), after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        # Europe/Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]),
        ("0,30 2 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]),
        ("0 2,3 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)]),
        ("30 1 * * *", "Europe/Berlin", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 23, 30)]),
        ("*/30 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0), [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1)]),
        ("0 */2 * * *", "Europe/Berlin", utc(2026, 3, 28, 22, 30), [utc(2026, 3, 28, 23), utc(2026, 3, 29, 2)]),
        # Europe/Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:xx CEST is 00:xx UTC, CET 01:xx UTC.
        ("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]),
        ("*/30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12), [utc(2026, 10, 25, 0), utc(2026, 10, 25, 0, 30)]),
        ("*/30 2 * * *", "Europe/Berlin", utc(2026, 10, 25, 0, 30), [utc(2026, 10, 26, 1), utc(2026, 10, 26, 1, 30)]),
        ("0 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 30), [utc(2026, 10, 25, h) for h in (0, 1, 2)]),
        ("0 */2 * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 30), [utc(2026, 10, 25, h) for h in (0, 1, 3)]),
        # America/New_York, 2026-03-08: 02:00 EST jumps to 03:00 EDT (07:00 UTC).
        ("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12), [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)]),
        ("*/30 * * * *", "America/New_York", utc(2026, 3, 8, 6), [utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7)]),
        # America/New_York, 2026-11-01: 02:00 EDT goes back to 01:00 EST; 01:xx EDT is 05:xx UTC, EST 06:xx.
        ("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12), [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]),
        ("0 * * * *", "America/New_York", utc(2026, 11, 1, 4, 30), [utc(2026, 11, 1, h) for h in (5, 6, 7)]),
    ],
)
def test_cron_dst(expression: str, zone: str, after: datetime, expected: list[datetime]) -> None:
    assert slots(Cron(expression, zone), after, len(expected)) == expected


def _dst_oracle(cron: Cron, low: datetime, high: datetime) -> list[datetime]:
    """The slots in (low, high], minute by minute from the module docstring's DST rules, for whole-minute zones."""
    spec, zone, found = cron.spec, cron.zone, []
    moment = low.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def matches(wall: datetime) -> bool:
        return wall.minute in spec.minute and wall.hour in spec.hour and spec.matches_day(wall.date())

    while moment <= high:
        local, before = moment.astimezone(zone), (moment - timedelta(minutes=1)).astimezone(zone)
        wall = local.replace(tzinfo=None)
        runs = matches(wall) and (local.fold == 0 or spec.hour_star)  # a repeated hour: first one, or both
        skipped = local.utcoffset() - before.utcoffset()  # type: ignore[operator]
        if skipped > timedelta(0) and not spec.hour_star:  # the gap ends now: its skipped wall times run here
            runs = runs or any(
                matches(wall - skipped + timedelta(minutes=m)) for m in range(skipped // timedelta(minutes=1))
            )
        if runs:
            found.append(moment)
        moment += timedelta(minutes=1)
    return found


WINDOWS = [
    ("Europe/Berlin", utc(2026, 3, 27, 20), utc(2026, 3, 30, 4)),
    ("Europe/Berlin", utc(2026, 10, 24, 20), utc(2026, 10, 26, 4)),
    ("America/New_York", utc(2026, 3, 7, 20), utc(2026, 3, 9, 12)),
    ("America/New_York", utc(2026, 10, 31, 20), utc(2026, 11, 2, 12)),
]


@pytest.mark.parametrize(("zone", "low", "high"), WINDOWS)
@pytest.mark.parametrize("expression", ["0,30 2 * * *", "*/20 * * * *", "7 1-3 * * *", "59 0,1 * * SUN", "@hourly"])
def test_cron_dst_against_a_minute_by_minute_oracle(expression: str, zone: str, low: datetime, high: datetime) -> None:
    cron = Cron(expression, zone)
    expected = _dst_oracle(cron, low, high)
    assert expected, "the window should hold slots"
    assert [slot for slot in slots(cron, low, len(expected) + 1) if slot <= high] == expected
    assert count_between(cron, low, high) == len(expected)


# ----------------------------------------------------------------------------- consistency of the queries

PROPERTY_TRIGGERS: list[Trigger] = [
    Cron("*/7 1-3 * * *", "Europe/Berlin"),
    Cron("0 * * * *", "Europe/Berlin"),
    Cron("30 2 * * *", "America/New_York"),
    Cron("0 12 13 * FRI", "UTC"),
    Interval(minutes=50, start=utc(2026, 3, 28, 23, 55)),
    Interval(hours=7, seconds=0.5, start=utc(2026, 3, 27, 5), repeats=20),
    OneTime(utc(2026, 3, 29, 1)),
]


@pytest.mark.parametrize("trigger", PROPERTY_TRIGGERS, ids=describe)
def test_queries_agree_with_iterating_next_after(trigger: Trigger) -> None:
    low, high = utc(2026, 3, 26, 23, 58, 30), utc(2026, 4, 3)  # low is no slot
    found = [slot for slot in slots(trigger, low, 10_000) if slot <= high]
    assert found == sorted(set(found)), "slots strictly increase"
    probes = [low + timedelta(minutes=53 * k + k % 7) for k in range(int((high - low) / timedelta(minutes=53)))]
    probes += [moment for slot in found for moment in (slot - TICK, slot, slot + TICK)]
    for probe in probes:
        before = [slot for slot in found if slot <= probe]
        assert count_between(trigger, low, probe) == len(before)
        if before:
            assert last_at_or_before(trigger, probe) == before[-1]
        after = [slot for slot in found if slot >= probe]
        if after:
            assert first_at_or_after(trigger, probe) == after[0]
    for earlier, later in zip(probes[::5], probes[3::5], strict=False):
        expected = sum(1 for slot in found if earlier < slot <= later)
        assert count_between(trigger, earlier, later) == expected
        assert count_between(trigger, later, earlier) == 0


def test_last_at_or_before_finds_a_leap_day_years_back() -> None:
    assert last_at_or_before(Cron("0 0 29 2 *"), utc(2028, 2, 28)) == utc(2024, 2, 29)


# ---------------------------------------------------------------------------------------- interval, once


@pytest.mark.parametrize(
    ("moment", "following", "latest", "runs"),
    [
        (utc(2026, 1, 1), START, None, 0),  # the start is in the future
        (START - TICK, START, None, 0),
        (START, START + timedelta(minutes=15), START, 1),
        (START + timedelta(minutes=44, seconds=59), START + timedelta(minutes=45), START + timedelta(minutes=30), 3),
        (START + timedelta(minutes=45), None, START + timedelta(minutes=45), 4),  # repeats used up
        (utc(2030, 1, 1), None, START + timedelta(minutes=45), 4),
    ],
)
def test_interval_with_repeats(
    moment: datetime, following: datetime | None, latest: datetime | None, runs: int
) -> None:
    every = Interval(minutes=15, start=START, repeats=4)
    assert next_after(every, moment) == following
    assert last_at_or_before(every, moment) == latest
    assert count_between(every, utc(2000, 1, 1), moment) == runs


@pytest.mark.parametrize(
    ("trigger", "after", "expected"),
    [
        (Interval(seconds=0.25, start=START), START + timedelta(seconds=1), START + timedelta(seconds=1.25)),
        (Interval(weeks=1, days=1, start=START), START, START + timedelta(days=8)),
        (Interval(seconds=1, start=START.astimezone(ZoneInfo("Asia/Tokyo"))), START, START + timedelta(seconds=1)),
        # Elapsed time: a day after 12:00 CET on 28 March is 13:00 CEST on 29 March, across the DST change.
        (Interval(days=1, start=BERLIN_NOON), utc(2026, 3, 28, 11), utc(2026, 3, 29, 11)),
        (Interval(minutes=10, start=START), START + timedelta(days=365), START + timedelta(days=365, minutes=10)),
    ],
)
def test_interval_next_after(trigger: Trigger, after: datetime, expected: datetime | None) -> None:
    assert next_after(trigger, after) == expected


def test_one_time_queries() -> None:
    once = OneTime(datetime(2026, 11, 21, 11, tzinfo=timezone(timedelta(hours=1))))
    assert (once.at, once.at.tzinfo, first_at_or_after(once, START)) == (START, UTC, START)
    assert (next_after(once, START - TICK), next_after(once, START)) == (START, None)
    assert (last_at_or_before(once, START - TICK), last_at_or_before(once, START)) == (None, START)
    assert (count_between(once, START - TICK, START), count_between(once, START, utc(2030, 1, 1))) == (1, 0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "interval"),
        ({"seconds": 1e-7}, "interval"),
        ({"days": 10**9}, "interval"),
        ({"minutes": -1}, "interval.minutes"),
        ({"minutes": 1.5}, "interval.minutes"),
        ({"hours": True}, "interval.hours"),
        ({"days": None}, "interval.days"),
        ({"seconds": -0.5}, "interval.seconds"),
        ({"seconds": float("nan")}, "interval.seconds"),
        ({"seconds": float("inf")}, "interval.seconds"),
        ({"seconds": 1, "repeats": 0}, "repeats"),
        ({"seconds": 1, "repeats": 1.0}, "repeats"),
        ({"seconds": 1, "start": "2026-01-01T00:00:00Z"}, "start"),
        ({"seconds": 1, "start": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))}, "start"),
    ],
)
def test_interval_errors_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Interval(**{"start": START, **fields})
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: next_after(Cron("* * * * *"), datetime(2026, 1, 1)), "moment"),
        (lambda: first_at_or_after(OneTime(START), datetime(2026, 1, 1)), "moment"),
        (lambda: last_at_or_before(Interval(seconds=1, start=START), datetime(2026, 1, 1)), "moment"),
        (lambda: count_between(OneTime(START), datetime(2026, 1, 1), START), "after"),
        (lambda: count_between(OneTime(START), START, datetime(2026, 1, 1)), "upto"),
        (lambda: OneTime(datetime(2026, 1, 1)), "at"),
        (lambda: Interval(seconds=1, start=datetime(2026, 1, 1)), "start"),
        (lambda: Cron("* * * * *", "Mars/Olympus_Mons"), "timezone"),
        (lambda: Cron("* * * * *", None), "timezone"),  # type: ignore[arg-type]
    ],
)
def test_naive_datetimes_and_bad_zones_are_refused(call: Callable[[], object], field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        call()
    assert caught.value.field == field


def test_a_non_trigger_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not a trigger"):
        next_after("*/5 * * * *", START)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- text and JSON


FORMS = [
    (Interval(seconds=30, start=START, repeats=5), "every 30 s from 2026-11-21 10:00:00+00:00 (5 runs)"),
    (Interval(minutes=5, start=START, repeats=1), "every 5 min from 2026-11-21 10:00:00+00:00 (1 run)"),
    (
        Interval(weeks=1, days=2, hours=3, seconds=0.5, start=START + timedelta(microseconds=7)),
        "every 1 w 2 d 3 h 0.5 s from 2026-11-21 10:00:00.000007+00:00",
    ),
    (Cron("@daily", "America/New_York"), "cron '@daily' (America/New_York)"),
    (Cron("0 9 * * MON-FRI"), "cron '0 9 * * MON-FRI' (UTC)"),
    (OneTime(datetime(2026, 11, 21, 11, tzinfo=timezone(timedelta(hours=1)))), "once at 2026-11-21 10:00:00+00:00"),
]


@pytest.mark.parametrize(("trigger", "text"), FORMS)
def test_describe(trigger: Trigger, text: str) -> None:
    assert describe(trigger) == text


@pytest.mark.parametrize(("trigger", "text"), FORMS)
def test_json_round_trip(trigger: Trigger, text: str) -> None:
    back = trigger_from_dict(json.loads(json.dumps(trigger_to_dict(trigger))))
    assert back == trigger
    assert slots(back, START, 3) == slots(trigger, START, 3)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ("interval", "trigger"),
        ({}, "kind"),
        ({"kind": "weekly"}, "kind"),
        ({"kind": ["cron"]}, "kind"),
        ({"kind": "interval", "seconds": 1}, "start"),
        ({"kind": "interval", "seconds": 1, "start": "2026-01-01T00:00:00"}, "start"),
        ({"kind": "interval", "seconds": 1, "start": "2026-01-01T00:00:00Z", "every": 2}, "every"),
        ({"kind": "interval", "seconds": 1, "start": "2026-01-01T00:00:00Z", "repeats": 0}, "repeats"),
        ({"kind": "cron"}, "cron"),
        ({"kind": "cron", "expression": "* * * * MONDAY"}, "cron.day_of_week"),
        ({"kind": "cron", "expression": "* * * * *", "timezone": "Nowhere/Town"}, "timezone"),
        ({"kind": "once"}, "at"),
        ({"kind": "once", "at": 1700000000}, "at"),
        ({"kind": "once", "at": "0001-01-01T00:00:00+01:00"}, "at"),
    ],
)
def test_trigger_from_dict_errors_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        trigger_from_dict(data)
    assert caught.value.field == field
