"""The Metrics screen's arithmetic (pure): each server's ``GET /metrics`` answer made into per-minute slots of the
last hour, summed over servers, and the charts' series (requests/s, error rate, p50 and p99 latency).

Percentiles cannot be added across servers: the cluster's (or a service's over servers) p50 is the servers' p50
weighted by their calls in that minute, and its p99 the highest server's p99 (an upper bound, said in the page).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..charts import Series

SLOTS = 60
"""Minutes shown: the last hour."""


@dataclass
class Slots:
    """One scope's (the cluster, a server, a service) minutes of the last hour, oldest first, and its totals."""

    calls: list[int] = field(default_factory=lambda: [0] * SLOTS)
    errors: list[int] = field(default_factory=lambda: [0] * SLOTS)
    p50: list[float | None] = field(default_factory=lambda: [None] * SLOTS)
    p99: list[float | None] = field(default_factory=lambda: [None] * SLOTS)
    total_calls: int = 0
    total_errors: int = 0
    total_p50: float | None = None
    total_p99: float | None = None


def last_minute(now: float) -> int:
    """The minute (epoch seconds // 60) that holds ``now``: the last slot."""
    return int(now // 60)


def slots_of(scope: Mapping[str, Any], end: int) -> Slots:
    """``scope`` (``total`` or one service of an answer: calls, errors, p50_ms, p99_ms, minutes) as slots ending
    at minute ``end``; minutes outside the hour are left out."""
    out = Slots(
        total_calls=int(scope.get("calls") or 0),
        total_errors=int(scope.get("errors") or 0),
        total_p50=scope.get("p50_ms"),
        total_p99=scope.get("p99_ms"),
    )
    for minute in scope.get("minutes") or ():
        slot = int(float(minute["at"]) // 60) - end + SLOTS - 1
        if 0 <= slot < SLOTS:
            out.calls[slot] += int(minute.get("calls") or 0)
            out.errors[slot] += int(minute.get("errors") or 0)
            out.p50[slot] = minute.get("p50_ms")
            out.p99[slot] = minute.get("p99_ms")
    return out


def combine(parts: Sequence[Slots]) -> Slots:
    """Several servers' slots of one scope as one: calls and errors summed, p50 weighted by calls, p99 the max."""
    out = Slots()
    for slot in range(SLOTS):
        out.calls[slot] = sum(p.calls[slot] for p in parts)
        out.errors[slot] = sum(p.errors[slot] for p in parts)
        out.p50[slot] = _weighted([(p.p50[slot], p.calls[slot]) for p in parts])
        out.p99[slot] = _highest(p.p99[slot] for p in parts)
    out.total_calls = sum(p.total_calls for p in parts)
    out.total_errors = sum(p.total_errors for p in parts)
    out.total_p50 = _weighted([(p.total_p50, p.total_calls) for p in parts])
    out.total_p99 = _highest(p.total_p99 for p in parts)
    return out


def _weighted(pairs: Iterable[tuple[float | None, int]]) -> float | None:
    known = [(value, max(weight, 1)) for value, weight in pairs if value is not None]
    if not known:
        return None
    return sum(v * w for v, w in known) / sum(w for _, w in known)


def _highest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def rate(slots: Slots) -> list[float | None]:
    """Requests per second in each minute (the last, unfinished minute counted over a whole minute too)."""
    return [calls / 60 for calls in slots.calls]


def error_rate(slots: Slots) -> list[float | None]:
    """Failed calls in percent of calls, each minute (``None`` where there were none)."""
    return [100 * e / c if c else None for c, e in zip(slots.calls, slots.errors, strict=True)]


@dataclass
class Scope:
    """What one scope's three charts draw: requests/s, error rate, latency (p50 and p99) per series."""

    name: str
    totals: Slots
    requests: list[Series]
    errors: list[Series]
    latency: list[Series]


def scope(name: str, parts: Mapping[str, Slots]) -> Scope:
    """One part (the cluster, a service): its requests/s, error rate, p50 and p99. Several (the servers): one
    line per part in each chart, and of latency only the p99 (two lines per server would not be readable)."""
    whole = combine(list(parts.values()))
    if len(parts) == 1:
        requests = [Series("requests", rate(whole))]
        errors = [Series("errors", error_rate(whole))]
        latency = [Series("p50", whole.p50), Series("p99", whole.p99)]
    else:
        requests = [Series(label, rate(s)) for label, s in parts.items()]
        errors = [Series(label, error_rate(s)) for label, s in parts.items()]
        latency = [Series(f"{label} p99", s.p99) for label, s in parts.items()]
    return Scope(name, whole, requests, errors, latency)


def servers_slots(answers: Mapping[str, Mapping[str, Any]], end: int) -> dict[str, Slots]:
    """Each server's ``total`` as slots."""
    return {server: slots_of(value.get("total") or {}, end) for server, value in answers.items()}


def services_slots(answers: Mapping[str, Mapping[str, Any]], end: int) -> dict[str, dict[str, Slots]]:
    """Each service's slots, by server: ``{service: {server: Slots}}``."""
    found: dict[str, dict[str, Slots]] = {}
    for server, value in answers.items():
        for one in value.get("services") or ():
            found.setdefault(str(one["name"]), {})[server] = slots_of(one, end)
    return found


def busiest(services: Mapping[str, Mapping[str, Slots]], query: str = "", limit: int = 20) -> list[str]:
    """Names of the services with the most calls (since the servers started), those containing ``query`` only."""
    wanted = query.strip().lower()
    names = [name for name in services if wanted in name.lower()]
    names.sort(key=lambda n: (-sum(s.total_calls for s in services[n].values()), n))
    return names[:limit]


__all__ = [
    "SLOTS",
    "Scope",
    "Slots",
    "busiest",
    "combine",
    "error_rate",
    "last_minute",
    "rate",
    "scope",
    "servers_slots",
    "services_slots",
    "slots_of",
]
