"""The scheduler's pure decisions: which one slot of a due job runs now, and the wait before a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from splice.scheduler.policy import Decision, decide, retry_delay
from splice.server.jobs.triggers import Cron, Interval, OneTime, Trigger, first_at_or_after

S = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
GRACE = 30.0
EVERY_MINUTE = Interval(minutes=1, start=S)
EVERY_10_S = Interval(seconds=10, start=S)
THREE_RUNS = Interval(minutes=1, start=S, repeats=3)
BERLIN_QUARTERS = Cron("*/15 * * * *", "Europe/Berlin")
DAILY_3AM = Cron("0 3 * * *")


def at(minutes: float = 0, seconds: float = 0, days: int = 0) -> datetime:
    return S + timedelta(days=days, minutes=minutes, seconds=seconds)


def on(month: int, day: int, *time: int) -> datetime:
    return datetime(2026, month, day, *time, tzinfo=UTC)


@pytest.mark.parametrize(
    ("trigger", "due", "now", "misfire", "expected"),
    [
        # On time, or late within the grace: the slot runs.
        (EVERY_MINUTE, S, S, "skip", Decision(S, True, 0, at(1))),
        (EVERY_MINUTE, S, at(seconds=30), "skip", Decision(S, True, 0, at(1))),  # the grace is inclusive
        (EVERY_MINUTE, at(1), at(1, 0.25), "run_once", Decision(at(1), True, 0, at(2))),
        # A few slots missed, the latest within the grace: only the latest runs, the others are counted.
        (EVERY_10_S, S, at(seconds=25), "skip", Decision(at(seconds=20), True, 2, at(seconds=30))),
        (EVERY_MINUTE, S, at(3, 10), "skip", Decision(at(3), True, 3, at(4))),
        # Beyond the grace: the misfire policy decides, still for one slot only.
        (EVERY_MINUTE, S, at(seconds=30.5), "run_once", Decision(S, True, 0, at(1), "30.5 s late: run once")),
        (EVERY_MINUTE, S, at(seconds=30.5), "skip", Decision(S, False, 0, at(1), "30.5 s late: skipped")),
        (EVERY_MINUTE, S, at(3, 40), "run_once", Decision(at(3), True, 3, at(4), "40.0 s late: run once")),
        (EVERY_MINUTE, S, at(3, 40), "skip", Decision(at(3), False, 3, at(4), "40.0 s late: skipped")),
        (DAILY_3AM, on(11, 1, 3), on(11, 5, 3, 0, 10), "skip", Decision(on(11, 5, 3), True, 4, on(11, 6, 3))),
        # One-time jobs: there is no next slot.
        (OneTime(S), S, at(seconds=5), "skip", Decision(S, True, 0, None)),
        (OneTime(S), S, at(60), "run_once", Decision(S, True, 0, None, "3600.0 s late: run once")),
        (OneTime(S), S, at(60), "skip", Decision(S, False, 0, None, "3600.0 s late: skipped")),
        # Intervals whose repeats are used up: the last slot is the latest, and nothing follows.
        (THREE_RUNS, at(2), at(2, 1), "skip", Decision(at(2), True, 0, None)),
        (THREE_RUNS, S, at(60), "run_once", Decision(at(2), True, 2, None, "3480.0 s late: run once")),
        (THREE_RUNS, S, at(60), "skip", Decision(at(2), False, 2, None, "3480.0 s late: skipped")),
        # Across spring forward in Berlin: 01:00-01:45 CET (00:xx UTC) missed, 03:00 CEST (01:00 UTC) runs.
        (BERLIN_QUARTERS, on(3, 29, 0), on(3, 29, 1, 0, 20), "skip", Decision(on(3, 29, 1), True, 4, on(3, 29, 1, 15))),
        # Nothing due yet: nothing to claim, the due time stays.
        (EVERY_MINUTE, at(1), at(0, 59), "run_once", Decision(None, False, 0, at(1))),
        (OneTime(at(5)), at(5), S, "run_once", Decision(None, False, 0, at(5))),
        # A due time that passed but is no slot (stored under other rules): the next real slot, not itself again.
        (EVERY_MINUTE, at(0, 30), at(0, 45), "run_once", Decision(None, False, 0, at(1))),
        (OneTime(S), at(1), at(2), "run_once", Decision(None, False, 0, None)),
        # ... and when slots did pass since, the missed ones are those from it on: 10:01 and 10:02, not 10:03.
        (EVERY_MINUTE, at(0, 30), at(3, 10), "skip", Decision(at(3), True, 2, at(4))),
    ],
)
def test_decide(trigger: Trigger, due: datetime, now: datetime, misfire: str, expected: Decision) -> None:
    decision = decide(trigger, due, now, misfire, GRACE)
    assert (decision.slot, decision.run, decision.missed, decision.next_due) == (
        expected.slot,
        expected.run,
        expected.missed,
        expected.next_due,
    )
    assert decision.reason.startswith(expected.reason)
    assert bool(decision.reason) == bool(expected.reason)
    if expected.reason:
        assert f"misfire policy {misfire}" in decision.reason


@pytest.mark.parametrize("trigger", [EVERY_MINUTE, EVERY_10_S, THREE_RUNS, BERLIN_QUARTERS, DAILY_3AM, OneTime(S)])
@pytest.mark.parametrize("down_for", [timedelta(0), timedelta(seconds=29), timedelta(hours=5), timedelta(days=40)])
@pytest.mark.parametrize("misfire", ["run_once", "skip"])
def test_never_a_burst(trigger: Trigger, down_for: timedelta, misfire: str) -> None:
    """However long the scheduler was away, one decision claims one slot and moves past ``now``."""
    due = first_at_or_after(trigger, on(3, 28))  # the first slot: S for the intervals and the one-time job
    assert due is not None
    now = due + down_for + timedelta(seconds=1)
    first = decide(trigger, due, now, misfire, GRACE)
    assert first.slot is not None
    assert due <= first.slot <= now
    assert first.next_due is None or first.next_due > now
    if first.next_due is not None:
        again = decide(trigger, first.next_due, now, misfire, GRACE)
        assert (again.slot, again.next_due) == (None, first.next_due)


@pytest.mark.parametrize(
    ("attempt", "backoff", "delay"),
    [
        (0, 1.0, 1.0),
        (1, 1.0, 1.0),
        (2, 1.0, 2.0),
        (3, 1.5, 6.0),
        (10, 1.0, 512.0),
        (12, 1.0, 2048.0),
        (13, 1.0, 3600.0),  # 4096 s, capped at MAX_BACKOFF
        (1, 3600.0, 3600.0),
        (2, 0.001, 0.002),
        (101, 0.5, 3600.0),
        (5000, 1.0, 3600.0),  # far past a float's range: capped, not an OverflowError
    ],
)
def test_retry_delay_doubles_up_to_the_cap(attempt: int, backoff: float, delay: float) -> None:
    assert retry_delay(attempt, backoff) == delay
    assert isinstance(retry_delay(attempt, backoff), float)
