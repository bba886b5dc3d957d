"""Per-service call metrics of one server: counts, a latency histogram, the last hour by minute, recent calls.

``Metrics.record`` runs once per call (the invoker calls it on the event loop, after the call, whatever the
channel), so it is kept cheap: a dict lookup, a bisect into fixed bounds, a few integer increments and one tuple
for the ring of recent calls; no I/O, no lock (every call records from the loop's thread). Reading
(``snapshot``, ``buckets``) does the arithmetic: percentiles are read off the histogram, linearly interpolated
within a bucket (as Prometheus' ``histogram_quantile`` does), so they are as fine as its bounds (19% apart).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

BOUNDS_MS: tuple[float, ...] = tuple(0.1 * 2 ** (i / 4) for i in range(77))
"""Upper bounds of the fine latency buckets, in ms: 0.1 ms to ~52 s, four per doubling; one more bucket
holds everything slower."""
COARSE_MS: tuple[float, ...] = tuple(0.1 * 2**j for j in range(20))
"""Every fourth fine bound (0.1 ms doubling to ~52 s): the per-minute histograms and the Prometheus buckets."""
RING = 20
"""How many recent calls, and recent failures, each service keeps."""
MINUTES = 60
_COARSE = len(COARSE_MS) + 1

Call = tuple[float, str, float, bool, "str | None", "str | None"]
"""One call as the rings keep it: (at, cid, ms, ok, channel, error)."""


class ServiceMetrics:
    """One service's figures since the server started."""

    __slots__ = ("calls", "errors", "failures", "histogram", "minutes", "recent", "seconds")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.seconds = 0.0
        """The sum of every call's duration (the Prometheus histogram's ``_sum``)."""
        self.histogram = [0] * (len(BOUNDS_MS) + 1)
        self.minutes: list[list[int] | None] = [None] * MINUTES
        """By ``minute % 60``: ``[minute, calls, errors, *coarse histogram]``, made on the minute's first call."""
        self.recent: deque[Call] = deque(maxlen=RING)
        self.failures: deque[Call] = deque(maxlen=RING)


class Metrics:
    """Every service's figures on this server (``runtime.metrics``)."""

    def __init__(self, clock: Any = time.time) -> None:
        self.services: dict[str, ServiceMetrics] = {}
        self.started_at: float = clock()
        self.clock = clock

    def record(
        self, name: str, seconds: float, at: float, cid: str, ok: bool, channel: str | None, error: str | None = None
    ) -> None:
        """One call of ``name`` that took ``seconds`` and ended at ``at`` (epoch seconds)."""
        stats = self.services.get(name)
        if stats is None:
            stats = self.services[name] = ServiceMetrics()
        ms = seconds * 1000.0
        index = bisect_left(BOUNDS_MS, ms)
        stats.calls += 1
        stats.seconds += seconds
        stats.histogram[index] += 1
        minute = int(at // 60)
        slot = stats.minutes[minute % MINUTES]
        if slot is None or slot[0] != minute:
            slot = stats.minutes[minute % MINUTES] = [minute, 0, 0, *([0] * _COARSE)]
        slot[1] += 1
        slot[3 + ((index + 3) >> 2)] += 1  # fine bucket i lies within coarse bucket ceil(i / 4)
        call = (at, cid, ms, ok, channel, error)
        stats.recent.append(call)
        if not ok:
            stats.errors += 1
            slot[2] += 1
            stats.failures.append(call)

    def snapshot(self, service: str | None = None) -> dict[str, Any]:
        """The figures as the admin API answers them: a total, and every service (or only ``service``)."""
        now = self.clock()
        first = int(now // 60) - MINUTES + 1
        names = sorted(self.services) if service is None else [service]
        services = [_service(name, self.services.get(name) or ServiceMetrics(), first) for name in names]
        every = list(self.services.values())
        histogram = _sum_lists(s.histogram for s in every)
        return {
            "started_at": self.started_at,
            "now": now,
            "total": {
                "calls": sum(s.calls for s in every),
                "errors": sum(s.errors for s in every),
                "p50_ms": percentile(histogram, BOUNDS_MS, 0.5),
                "p99_ms": percentile(histogram, BOUNDS_MS, 0.99),
                "minutes": _minutes([slot for s in every for slot in s.minutes], first),
            },
            "services": services,
        }

    def buckets(self) -> list[tuple[str, int, int, float, list[int]]]:
        """Per service, sorted: (name, calls, errors, seconds, cumulative counts at each ``COARSE_MS`` bound and
        +Inf), for the Prometheus histogram."""
        out = []
        for name in sorted(self.services):
            stats = self.services[name]
            cumulative, running, fine = [], 0, 0
            for bound in range(len(COARSE_MS)):
                while fine <= 4 * bound:
                    running += stats.histogram[fine]
                    fine += 1
                cumulative.append(running)
            cumulative.append(stats.calls)
            out.append((name, stats.calls, stats.errors, stats.seconds, cumulative))
        return out


def percentile(histogram: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a histogram whose bucket ``i`` holds values up to ``bounds[i]`` (the last bucket,
    beyond every bound, reads as the last bound); ``None`` if it is empty."""
    total = sum(histogram)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            if index >= len(bounds):
                return round(bounds[-1], 3)
            low = bounds[index - 1] if index else 0.0
            return round(low + (bounds[index] - low) * max(rank - seen, 0) / count, 3)
        seen += count
    return round(bounds[-1], 3)  # unreachable: the loop ends at the last count


def _service(name: str, stats: ServiceMetrics, first: int) -> dict[str, Any]:
    return {
        "name": name,
        "calls": stats.calls,
        "errors": stats.errors,
        "p50_ms": percentile(stats.histogram, BOUNDS_MS, 0.5),
        "p99_ms": percentile(stats.histogram, BOUNDS_MS, 0.99),
        "minutes": _minutes(stats.minutes, first),
        "recent": [_call(call) for call in reversed(stats.recent)],
        "failures": [_call(call) for call in reversed(stats.failures)],
    }


def _minutes(slots: Iterable[list[int] | None], first: int) -> list[dict[str, Any]]:
    """The minutes from ``first`` on that had calls, oldest first (slots of one minute from several services add)."""
    by_minute: dict[int, list[int]] = {}
    for slot in slots:
        if slot is None or slot[0] < first:
            continue
        held = by_minute.get(slot[0])
        by_minute[slot[0]] = list(slot) if held is None else [slot[0], *_sum_lists((held[1:], slot[1:]))]
    return [
        {
            "at": minute * 60,
            "calls": slot[1],
            "errors": slot[2],
            "p50_ms": percentile(slot[3:], COARSE_MS, 0.5),
            "p99_ms": percentile(slot[3:], COARSE_MS, 0.99),
        }
        for minute, slot in sorted(by_minute.items())
    ]


def _sum_lists(lists: Iterable[Sequence[int]]) -> list[int]:
    total: list[int] = []
    for values in lists:
        total = [a + b for a, b in zip(total, values, strict=True)] if total else list(values)
    return total


def _call(call: Call) -> dict[str, Any]:
    at, cid, ms, ok, channel, error = call
    return {"at": at, "cid": cid, "ms": round(ms, 3), "ok": ok, "channel": channel, "error": error}


__all__ = ["BOUNDS_MS", "COARSE_MS", "Metrics", "ServiceMetrics", "percentile"]
