"""Job definitions: each trigger form, the options, every error naming its field, changes, and times in µs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from splice.server.http.responses import http_status
from splice.server.jobs.spec import JobSpec, JobSpecError, first_due_us, from_us, parse_job, to_us
from splice.server.jobs.triggers import Cron, Interval, OneTime, Trigger

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
NOW_US = 1_795_255_200_000_000
NAMES = {"name": "cleanup", "service": "accounts.cleanup"}


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def parse(body: dict[str, Any], partial_of: JobSpec | None = None) -> JobSpec:
    return parse_job({**NAMES, **body}, NOW, partial_of=partial_of)


def seconds(value: float) -> datetime:
    return NOW + timedelta(seconds=value)


@pytest.mark.parametrize(
    ("body", "trigger"),
    [
        ({"interval": 30}, Interval(seconds=30, start=seconds(30))),  # the first run is one period on
        ({"interval": 0.5}, Interval(seconds=0.5, start=seconds(0.5))),
        ({"interval": {"minutes": 5}}, Interval(minutes=5, start=seconds(300))),
        ({"interval": {"minutes": 1.5}}, Interval(seconds=90, start=seconds(90))),  # fractions go to seconds
        ({"interval": {"days": 1, "minutes": 2.0}}, Interval(days=1, minutes=2, start=seconds(86_520))),
        (
            {"interval": {"hours": 1, "seconds": 30}, "start": "2026-12-01T00:00:00+01:00", "repeats": 3},
            Interval(hours=1, seconds=30, start=utc(2026, 11, 30, 23), repeats=3),
        ),
        ({"interval": 60, "start": "2026-11-21T09:00:00Z"}, Interval(seconds=60, start=utc(2026, 11, 21, 9))),
        ({"interval": 60, "repeats": None}, Interval(seconds=60, start=seconds(60))),
        ({"cron": "*/5 * * * *"}, Cron("*/5 * * * *", "UTC")),
        ({"cron": "@daily", "timezone": "Europe/Berlin"}, Cron("@daily", "Europe/Berlin")),
        ({"at": "2026-11-21T11:00:00Z"}, OneTime(seconds(3600))),
        ({"at": " 2026-11-21T12:00:00+01:00 "}, OneTime(seconds(3600))),
        ({"in": 1800}, OneTime(seconds(1800))),
        ({"in": 2.5}, OneTime(seconds(2.5))),
        ({"in": 0}, OneTime(NOW)),
        (
            {"trigger": {"kind": "cron", "expression": "0 9 * * MON-FRI", "timezone": "America/New_York"}},
            Cron("0 9 * * MON-FRI", "America/New_York"),
        ),
        (
            {"trigger": {"kind": "interval", "minutes": 5, "start": "2026-11-21T10:00:00Z", "repeats": 2}},
            Interval(minutes=5, start=NOW, repeats=2),
        ),
        ({"trigger": {"kind": "once", "at": "2026-12-24T18:00:00+01:00"}}, OneTime(utc(2026, 12, 24, 17))),
    ],
)
def test_each_trigger_form(body: dict[str, Any], trigger: Trigger) -> None:
    spec = parse(body)
    assert spec.trigger == trigger
    assert (spec.name, spec.service) == ("cleanup", "accounts.cleanup")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, {"payload": None, "misfire": "run_once", "retries": 0, "backoff": 1.0, "paused": False}),
        (
            {"payload": {"id": 7}, "misfire": "skip", "retries": 3, "backoff": 2, "paused": True},
            {"payload": {"id": 7}, "misfire": "skip", "retries": 3, "backoff": 2.0, "paused": True},
        ),
        ({"retries": 100, "backoff": 3600}, {"retries": 100, "backoff": 3600.0}),
        ({"backoff": 0.001}, {"backoff": 0.001}),
    ],
)
def test_options_and_their_defaults(body: dict[str, Any], expected: dict[str, Any]) -> None:
    spec = parse({"interval": 60, **body})
    assert {key: getattr(spec, key) for key in expected} == expected


def test_as_json_holds_the_trigger_in_its_stored_form() -> None:
    spec = parse({"cron": "0 3 * * *", "timezone": "Europe/Berlin", "payload": [1], "retries": 2})
    assert spec.as_json() == {
        **NAMES,
        "payload": [1],
        "trigger": {"kind": "cron", "expression": "0 3 * * *", "timezone": "Europe/Berlin"},
        "misfire": "run_once",
        "retries": 2,
        "backoff": 1.0,
        "paused": False,
    }


LATER = "2026-11-21T11:00:00Z"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"interval": 60, "colour": "red"}, "colour", "unknown field"),
        ({}, "trigger", "is required"),
        ({"interval": 60, "cron": "* * * * *"}, "cron", "one trigger: 'interval' or 'cron'"),
        ({"at": LATER, "in": 5}, "in", "not both"),
        ({"interval": 5, "trigger": {"kind": "once", "at": LATER}}, "trigger", "not both"),
        ({"interval": 0}, "interval", "more than 0"),
        ({"interval": -1}, "interval", "more than 0"),
        ({"interval": {}}, "interval", "more than 0"),
        ({"interval": "60"}, "interval", "must be a number"),
        ({"interval": True}, "interval", "must be a number"),
        ({"interval": float("nan")}, "interval", "must be a number"),
        ({"interval": [60]}, "interval", "must be a number"),
        ({"interval": {"minute": 5}}, "interval.minute", "unknown unit"),
        ({"interval": {"minutes": -5}}, "interval.minutes", "0 or more"),
        ({"interval": {"hours": "1"}}, "interval.hours", "must be a number"),
        ({"interval": 1e15}, "interval", "too long"),
        ({"interval": {"weeks": 1e9}}, "interval", "too long"),
        ({"interval": 1e13}, "interval", "after the year 9999"),
        ({"interval": 60, "timezone": "Europe/Berlin"}, "timezone", "elapsed time"),
        ({"interval": 60, "start": "2026-11-21T11:00:00"}, "start", "needs a timezone"),
        ({"interval": 60, "start": "tomorrow"}, "start", "not an ISO-8601"),
        ({"interval": 60, "start": 1_700_000_000}, "start", "ISO-8601 string"),
        ({"interval": 60, "start": "9999-12-31T23:00:00-05:00"}, "start", "out of range"),
        ({"interval": 60, "repeats": 0}, "repeats", "1 or more"),
        ({"interval": 60, "repeats": 1.5}, "repeats", "1 or more"),
        ({"interval": 60, "repeats": True}, "repeats", "1 or more"),
        ({"cron": 5}, "cron", "must be a string"),
        ({"cron": "61 * * * *"}, "cron.minute", "61 is out of range"),
        ({"cron": "* * * * MONDAY"}, "cron.day_of_week", "weekday name"),
        ({"cron": "* * *"}, "cron", "has 3 fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "never matches"),
        ({"cron": "* * * * *", "timezone": "Mars/Olympus_Mons"}, "timezone", "unknown timezone"),
        ({"cron": "* * * * *", "timezone": 1}, "timezone", "must be a string"),
        ({"cron": "* * * * *", "start": LATER}, "start", "interval jobs only"),
        ({"cron": "* * * * *", "repeats": 3}, "repeats", "interval jobs only"),
        ({"at": "2026-11-21T11:00:00"}, "at", "needs a timezone"),
        ({"at": 5}, "at", "ISO-8601 string"),
        ({"at": "0001-01-01T00:00:00+01:00"}, "at", "out of range"),
        ({"at": LATER, "timezone": "UTC"}, "timezone", "interval or cron jobs only"),
        ({"in": -1}, "in", "0 or more"),
        ({"in": "5"}, "in", "must be a number"),
        ({"in": 1e12}, "in", "too far ahead"),
        ({"in": 5, "repeats": 2}, "repeats", "interval or cron jobs only"),
        ({"trigger": "@daily"}, "trigger", "must be an object"),
        ({"trigger": {"kind": ["cron"]}}, "kind", "is unknown"),
        ({"trigger": {"kind": "interval", "seconds": 1}}, "start", "needs 'start'"),
        ({"trigger": {"kind": "cron", "expression": "60 * * * *"}}, "cron.minute", "out of range"),
        ({"trigger": {"kind": "cron", "expression": "@daily"}, "timezone": "Europe/Berlin"}, "timezone", "'trigger'"),
        ({"trigger": {"kind": "once", "at": LATER}, "start": LATER}, "start", "does not go with 'trigger'"),
        ({"interval": 60, "misfire": "burst"}, "misfire", "run_once, skip"),
        ({"interval": 60, "misfire": None}, "misfire", "run_once, skip"),
        ({"interval": 60, "retries": -1}, "retries", "from 0 to 100"),
        ({"interval": 60, "retries": 101}, "retries", "from 0 to 100"),
        ({"interval": 60, "retries": 1.0}, "retries", "from 0 to 100"),
        ({"interval": 60, "retries": True}, "retries", "from 0 to 100"),
        ({"interval": 60, "backoff": 0}, "backoff", "more than 0"),
        ({"interval": 60, "backoff": 3601}, "backoff", "at most 3600"),
        ({"interval": 60, "backoff": "1"}, "backoff", "must be a number"),
        ({"interval": 60, "backoff": float("inf")}, "backoff", "must be a number"),
        ({"interval": 60, "paused": 1}, "paused", "true or false"),
        ({"interval": 60, "paused": "yes"}, "paused", "true or false"),
    ],
)
def test_errors_name_the_field(body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse(body)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"service": "accounts.cleanup", "interval": 60}, "name", "is required"),
        ({"name": "cleanup", "interval": 60}, "service", "is required"),
        ({"name": 5, "service": "accounts.cleanup", "interval": 60}, "name", "must be a string"),
        ({"name": "clean up", "service": "accounts.cleanup", "interval": 60}, "name", "may only hold"),
        ({"name": "reports/history", "service": "accounts.cleanup", "interval": 60}, "name", "may not hold '/'"),
        ({"name": "cleanup", "service": "", "interval": 60}, "service", "must not be empty"),
    ],
)
def test_name_and_service_errors(body: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_job(body, NOW)
    assert caught.value.field == field
    assert message in str(caught.value)


def test_job_spec_error_answers_with_its_field() -> None:
    with pytest.raises(JobSpecError) as caught:
        parse({"interval": 60, "retries": -1})
    assert http_status(caught.value) == 400  # the HTTP edge maps the error's code
    assert caught.value.as_dict() == {"code": "invalid_job", "message": str(caught.value), "field": "retries"}


# --------------------------------------------------------------------------------------- changing a job

EVERY_MINUTE = parse(
    {"interval": 60, "start": "2026-11-21T12:00:00Z", "repeats": 5, "misfire": "skip", "retries": 3, "payload": [1]}
)
BERLIN_3AM = parse({"cron": "0 3 * * *", "timezone": "Europe/Berlin", "paused": True})
ONCE = parse({"at": "2026-12-01T00:00:00Z", "backoff": 5})
NOON = utc(2026, 11, 21, 12)


@pytest.mark.parametrize(
    ("job", "change", "expected"),
    [
        (EVERY_MINUTE, {}, EVERY_MINUTE),
        (EVERY_MINUTE, {"retries": 1, "payload": None}, replace(EVERY_MINUTE, retries=1, payload=None)),
        (
            EVERY_MINUTE,
            {"start": LATER},
            replace(EVERY_MINUTE, trigger=Interval(seconds=60, start=seconds(3600), repeats=5)),
        ),
        (EVERY_MINUTE, {"repeats": None}, replace(EVERY_MINUTE, trigger=Interval(seconds=60, start=NOON))),
        (EVERY_MINUTE, {"repeats": 2}, replace(EVERY_MINUTE, trigger=Interval(seconds=60, start=NOON, repeats=2))),
        (EVERY_MINUTE, {"cron": "@hourly"}, replace(EVERY_MINUTE, trigger=Cron("@hourly"))),
        (EVERY_MINUTE, {"name": "other"}, replace(EVERY_MINUTE, name="other")),  # Jobs.change refuses renames
        (
            BERLIN_3AM,
            {"timezone": "America/New_York"},
            replace(BERLIN_3AM, trigger=Cron("0 3 * * *", "America/New_York")),
        ),
        # A new expression alone keeps the job's timezone: the fields left out keep their values.
        (BERLIN_3AM, {"cron": "0 4 * * *"}, replace(BERLIN_3AM, trigger=Cron("0 4 * * *", "Europe/Berlin"))),
        (BERLIN_3AM, {"cron": "0 4 * * *", "timezone": "UTC"}, replace(BERLIN_3AM, trigger=Cron("0 4 * * *"))),
        (BERLIN_3AM, {"interval": {"hours": 1}}, replace(BERLIN_3AM, trigger=Interval(hours=1, start=seconds(3600)))),
        (BERLIN_3AM, {"paused": False, "misfire": "skip"}, replace(BERLIN_3AM, paused=False, misfire="skip")),
        (ONCE, {"in": 60}, replace(ONCE, trigger=OneTime(seconds(60)))),
        (ONCE, {"backoff": 0.5}, replace(ONCE, backoff=0.5)),
    ],
)
def test_changes_keep_what_they_leave_out(job: JobSpec, change: dict[str, Any], expected: JobSpec) -> None:
    assert parse_job(change, NOW, partial_of=job) == expected


@pytest.mark.parametrize(
    ("job", "change", "field"),
    [
        (EVERY_MINUTE, {"timezone": "Europe/Berlin"}, "timezone"),
        (EVERY_MINUTE, {"start": LATER, "timezone": "Europe/Berlin"}, "timezone"),
        (EVERY_MINUTE, {"repeats": 0}, "repeats"),
        (EVERY_MINUTE, {"start": "soon"}, "start"),
        (EVERY_MINUTE, {"service": 5}, "service"),
        (EVERY_MINUTE, {"colour": "red"}, "colour"),
        (EVERY_MINUTE, {"interval": 60, "cron": "@daily"}, "cron"),
        (BERLIN_3AM, {"start": LATER}, "start"),
        (BERLIN_3AM, {"timezone": "Europe/Berlin", "repeats": 2}, "repeats"),
        (BERLIN_3AM, {"timezone": "Atlantis/Capital"}, "timezone"),
        (BERLIN_3AM, {"timezone": None}, "timezone"),
        (BERLIN_3AM, {"misfire": "later"}, "misfire"),
        (ONCE, {"timezone": "UTC"}, "timezone"),
        (ONCE, {"repeats": 2}, "repeats"),
        (ONCE, {"start": LATER}, "start"),
    ],
)
def test_change_errors_name_the_field(job: JobSpec, change: dict[str, Any], field: str) -> None:
    with pytest.raises(JobSpecError) as caught:
        parse_job(change, NOW, partial_of=job)
    assert caught.value.field == field


# ------------------------------------------------------------------------------------------ times in µs


@pytest.mark.parametrize(
    ("moment", "micros"),
    [
        (utc(1970, 1, 1), 0),
        (utc(1970, 1, 1, 0, 0, 1), 1_000_000),
        (utc(1969, 12, 31, 23, 59, 59, 999_999), -1),
        (NOW, NOW_US),
        (NOW + timedelta(microseconds=1), NOW_US + 1),
        (utc(9999, 12, 31, 23, 59, 59, 999_999), 253_402_300_799_999_999),  # beyond a float's precision
        (utc(1, 1, 1), -62_135_596_800_000_000),
    ],
)
def test_microseconds_since_the_epoch(moment: datetime, micros: int) -> None:
    assert to_us(moment) == micros
    assert from_us(micros) == moment
    assert from_us(micros).tzinfo is UTC


def test_to_us_reads_any_zone() -> None:
    assert to_us(datetime(2026, 11, 21, 11, tzinfo=timezone(timedelta(hours=1)))) == NOW_US


@pytest.mark.parametrize(
    ("trigger", "expected"),
    [
        (Interval(seconds=60, start=seconds(30)), seconds(30)),  # a start in the future
        (Interval(seconds=60, start=seconds(-90)), seconds(30)),  # on the start's grid
        (Interval(seconds=60, start=seconds(-120)), NOW),  # a slot right now is due now
        (Interval(seconds=60, start=seconds(-600), repeats=3), None),  # repeats used up
        (Cron("0 3 * * *", "Europe/Berlin"), utc(2026, 11, 22, 2)),
        (OneTime(NOW), NOW),
        (OneTime(NOW - timedelta(microseconds=1)), None),
    ],
)
def test_first_due_us(trigger: Trigger, expected: datetime | None) -> None:
    assert first_due_us(trigger, NOW) == (None if expected is None else to_us(expected))
