"""The metrics recorder (pure): counts, percentiles off the histogram, minutes, rings, Prometheus buckets."""

from __future__ import annotations

import pytest

from splice.server.core.metrics import BOUNDS_MS, COARSE_MS, RING, Metrics, percentile

T0 = 1_800_000_000.0  # a minute's start (divisible by 60)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("histogram", "bounds", "q", "expected"),
    [
        ([], (1.0, 2.0), 0.5, None),
        ([0, 0, 0], (1.0, 2.0), 0.5, None),
        ([10, 0, 0], (1.0, 2.0), 0.5, 0.5),  # interpolated within [0, 1]
        ([10, 0, 0], (1.0, 2.0), 1.0, 1.0),
        ([0, 4, 0], (1.0, 2.0), 0.5, 1.5),
        ([5, 5, 0], (1.0, 2.0), 0.5, 1.0),  # exactly the first bucket's end
        ([5, 5, 0], (1.0, 2.0), 0.99, 1.98),
        ([0, 0, 3], (1.0, 2.0), 0.5, 2.0),  # beyond every bound reads as the last bound
        ([99, 0, 1], (1.0, 2.0), 0.99, 1.0),
        ([98, 0, 2], (1.0, 2.0), 0.99, 2.0),
    ],
)
def test_percentile(histogram: list[int], bounds: tuple[float, ...], q: float, expected: float | None) -> None:
    assert percentile(histogram, bounds, q) == expected


def test_bounds_double_every_four_and_coarse_bounds_are_every_fourth() -> None:
    assert BOUNDS_MS[0] == pytest.approx(0.1)
    assert BOUNDS_MS[4] == pytest.approx(0.2)
    assert [BOUNDS_MS[4 * j] for j in range(len(COARSE_MS))] == pytest.approx(list(COARSE_MS))


@pytest.mark.parametrize(
    ("calls", "expected"),
    [
        # (ms, ok) of each call -> calls, errors, p50 and p99 (read off buckets 19% wide: within 19%)
        ([(1.0, True)] * 10, (10, 0, 1.0, 1.0)),
        ([(1.0, True)] * 98 + [(900.0, False)] * 2, (100, 2, 1.0, 900.0)),
        ([(5.0, False)], (1, 1, 5.0, 5.0)),
        ([(1.0, True)] * 50 + [(10.0, True)] * 50, (100, 0, 1.0, 10.0)),
        ([(100_000.0, True)], (1, 0, BOUNDS_MS[-1], BOUNDS_MS[-1])),  # slower than the last bound: the last bound
        ([(0.001, True)], (1, 0, 0.05, 0.099)),  # the first bucket is [0, 0.1 ms]
    ],
)
def test_counts_and_percentiles(calls: list[tuple[float, bool]], expected: tuple[int, int, float, float]) -> None:
    metrics = Metrics(Clock(T0 + 30))
    for index, (ms, ok) in enumerate(calls):
        metrics.record("orders.get", ms / 1000, T0 + 1, f"cid{index}", ok, "rest", None if ok else "boom")
    figures = metrics.snapshot()
    service = figures["services"][0]
    count, errors, p50, p99 = expected
    assert (service["name"], service["calls"], service["errors"]) == ("orders.get", count, errors)
    assert service["p50_ms"] == pytest.approx(p50, rel=0.19)
    assert service["p99_ms"] == pytest.approx(p99, rel=0.19)
    assert figures["total"]["calls"] == count
    assert figures["total"]["p99_ms"] == service["p99_ms"]
    ((minute),) = service["minutes"]
    assert (minute["at"], minute["calls"], minute["errors"]) == (int(T0), count, errors)
    assert minute["p99_ms"] == pytest.approx(p99, rel=1.0)  # the minutes' buckets double
    assert len(service["failures"]) == errors


def test_minutes_keep_the_last_hour_oldest_first_and_add_across_services() -> None:
    clock = Clock(T0)
    metrics = Metrics(clock)
    metrics.record("a", 0.001, T0 - 3600, "old", True, None)  # more than an hour before: left out
    metrics.record("a", 0.001, T0 - 120, "c1", True, None)
    metrics.record("a", 0.002, T0 + 5, "c2", False, None, "boom")
    metrics.record("b", 0.001, T0 + 10, "c3", True, None)
    clock.now = T0 + 30
    figures = metrics.snapshot()
    a = figures["services"][0]
    assert [(m["at"], m["calls"], m["errors"]) for m in a["minutes"]] == [(T0 - 120, 1, 0), (T0, 1, 1)]
    total = figures["total"]["minutes"]
    assert [(m["at"], m["calls"], m["errors"]) for m in total] == [(T0 - 120, 1, 0), (T0, 2, 1)]
    assert a["calls"] == 3  # counts are since the start, the minutes only the last hour


def test_a_minute_slot_is_reused_an_hour_later() -> None:
    clock = Clock(T0 + 3600)
    metrics = Metrics(clock)
    metrics.record("a", 0.001, T0, "c1", True, None)
    metrics.record("a", 0.001, T0 + 3600, "c2", True, None)  # the same slot (minute % 60)
    minutes = metrics.snapshot()["services"][0]["minutes"]
    assert [(m["at"], m["calls"]) for m in minutes] == [(T0 + 3600, 1)]


def test_rings_keep_the_last_calls_and_failures_newest_first() -> None:
    metrics = Metrics(Clock(T0))
    for index in range(RING + 5):
        ok = index % 2 == 0
        metrics.record("a", 0.003, T0 + index, f"cid{index}", ok, "rest" if ok else None, None if ok else "boom")
    service = metrics.snapshot("a")["services"][0]
    assert [c["cid"] for c in service["recent"]] == [f"cid{i}" for i in range(RING + 4, 4, -1)]
    assert service["recent"][0] == {
        "at": T0 + RING + 4,
        "cid": f"cid{RING + 4}",
        "ms": 3.0,
        "ok": True,
        "channel": "rest",
        "error": None,
    }
    assert [c["cid"] for c in service["failures"]] == [f"cid{i}" for i in range(RING + 3, 0, -2)][:RING]
    assert all(not c["ok"] and c["error"] == "boom" for c in service["failures"])


def test_one_service_asked_for_and_never_called_is_all_zero() -> None:
    metrics = Metrics(Clock(T0))
    metrics.record("a", 0.001, T0, "c1", True, None)
    figures = metrics.snapshot("never")
    assert figures["services"] == [
        {
            "name": "never",
            "calls": 0,
            "errors": 0,
            "p50_ms": None,
            "p99_ms": None,
            "minutes": [],
            "recent": [],
            "failures": [],
        }
    ]
    assert figures["total"]["calls"] == 1


def test_prometheus_buckets_are_cumulative_at_the_coarse_bounds() -> None:
    metrics = Metrics(Clock(T0))
    for ms in (0.05, 0.1, 0.15, 3.0, 100_000.0):
        metrics.record("a", ms / 1000, T0, "c", True, None)
    ((name, calls, errors, seconds, cumulative),) = metrics.buckets()
    assert (name, calls, errors) == ("a", 5, 0)
    assert seconds == pytest.approx(100.0033)
    assert len(cumulative) == len(COARSE_MS) + 1
    assert cumulative[0] == 2  # <= 0.1 ms
    assert cumulative[1] == 3  # <= 0.2 ms
    assert cumulative[COARSE_MS.index(next(b for b in COARSE_MS if b >= 3.0))] == 4
    assert cumulative[-2] == 4  # the slow one only in +Inf
    assert cumulative[-1] == 5
    assert cumulative == sorted(cumulative)
