"""What ``Broker.stats`` answers: topics and subscriptions with their queues' figures, from one read of depths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .memory import MemoryQueue
from .names import matches
from .specs import SubscriptionSpec, TopicSpec
from .store import Depth


def figures(
    topics: Mapping[str, TopicSpec],
    subscriptions: Mapping[str, SubscriptionSpec],
    depths: Mapping[str, Depth],
    queues: Mapping[str, MemoryQueue],
    now_us: int,
) -> dict[str, Any]:
    """``{"topics": [...], "subscriptions": [...]}``, each sorted by name.

    A subscription row: ``name, topic, service, ordered, ready, in_flight, dead, oldest_age`` (seconds since the
    oldest waiting or claimed message was published), and ``memory`` (``ready, in_flight, dead`` of its
    non-persistent messages on this server) when it has an in-memory queue here. A topic row: ``name,
    persistent, subscriptions`` (the ones it feeds), ``depth`` (messages ready in them: in the ODB for a
    persistent topic, in this server's memory for another) and ``oldest_age``."""
    specs = sorted(subscriptions.values(), key=lambda s: s.name)
    rows: list[dict[str, Any]] = []
    for spec in specs:
        row: dict[str, Any] = {"name": spec.name, "topic": spec.topic, "service": spec.service, "ordered": spec.ordered}
        row.update(depths.get(spec.name, Depth(spec.name)).as_json(now_us))
        queue = queues.get(spec.name)
        if queue is not None:
            waiting, in_flight = queue.counts()
            row["memory"] = {"ready": waiting, "in_flight": in_flight, "dead": queue.dead}
        rows.append(row)
    return {
        "topics": [_topic(t, specs, depths, queues, now_us) for t in sorted(topics.values(), key=lambda t: t.name)],
        "subscriptions": rows,
    }


def _topic(
    topic: TopicSpec,
    specs: list[SubscriptionSpec],
    depths: Mapping[str, Depth],
    queues: Mapping[str, MemoryQueue],
    now_us: int,
) -> dict[str, Any]:
    fed = [s.name for s in specs if matches(s.topic, topic.name)]
    oldest: list[int] = []
    if topic.persistent:
        found = [depths[name] for name in fed if name in depths]
        depth = sum(d.ready for d in found)
        oldest = [d.oldest_us for d in found if d.oldest_us is not None]
    else:
        depth = sum(len(queues[name]) for name in fed if name in queues)
    age = round(max(now_us - min(oldest), 0) / 1e6, 3) if oldest else None
    return {"name": topic.name, "persistent": topic.persistent, "subscriptions": fed, "depth": depth, "oldest_age": age}


__all__ = ["figures"]
