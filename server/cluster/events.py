"""Cluster events: which ones a server applies, and when it may have missed some.

Every server numbers the events it sends (``n`` = 1, 2, 3... for each start of its process, told apart by a
random ``boot`` id) and writes how many it sent into its row of ``servers`` at each heartbeat. A receiver keeps,
per sender, the boot and the last number it got. What the guarantee is (``ClusterMember.send_event``): events are
fire and forget; a server that may have lost any is told (``on_missed_events``), so that what it keeps from them
(a memory cache) is dropped instead of served stale. It may have lost some when:

- a number is skipped (``n`` is not last + 1 for the same boot), or the first event it gets from a sender is
  not that sender's first (nor the one after the count the sender had published when this server started);
- a sender starts again (a new boot, in an event or in its heartbeat) without having said goodbye (a ``bye``
  event at a clean stop), or stops being seen alive without one (killed: its last events may never have left);
- a sender's published count stays ahead of what arrived for more than ``PATIENCE`` heartbeats and at least
  ``patience`` seconds (the last events of a burst lost, with nothing after them to show a gap);
- the Redis bus reconnects (the member says so itself).

Events older than the last one taken from a sender (repeats, stragglers after a gap) are not applied.
No I/O here (the clock aside, unless given): the member feeds it events and heartbeats, and acts on what it answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

PATIENCE = 2
"""Heartbeats a sender's published count may stay ahead of what arrived (events in flight) before it counts as lost."""
PATIENCE_SECONDS = 3.0
"""And seconds, at least: an event is delivered or given up within two posts' timeouts (``bus.EVENT_TIMEOUT``)."""


@dataclass
class _Sender:
    boot: str
    last: int
    ended: bool = False
    """It said goodbye, or was seen gone and dealt with: a new boot of it starting at 1 misses nothing."""


@dataclass
class _Behind:
    boot: str
    target: int
    since: float
    beats: int = 0


class EventTracker:
    """Per sender, the last event taken; answers whether to apply an event and why events may have been missed."""

    def __init__(self, patience: float = PATIENCE_SECONDS) -> None:
        self.patience = patience
        self._senders: dict[str, _Sender] = {}
        self._baseline: dict[str, tuple[str, int]] = {}
        self._behind: dict[str, _Behind] = {}

    def baseline(self, peers: Iterable[Mapping[str, Any]]) -> None:
        """At start: the counts the other servers had published (``servers`` rows). Events up to those were sent
        before this server could hold anything they change, so a first event just after one misses nothing."""
        for peer in peers:
            if peer.get("events_boot"):
                self._baseline[peer["name"]] = (peer["events_boot"], int(peer.get("events_sent") or 0))

    def _received(self, origin: str, boot: str) -> int:
        """The last number of ``origin``'s ``boot`` this server accounts for (got it, or needs none before it)."""
        sender = self._senders.get(origin)
        if sender is not None and sender.boot == boot:
            return sender.last
        base = self._baseline.get(origin)
        if sender is None and base is not None and base[0] == boot:
            return base[1]
        return 0

    def accept(self, origin: str, boot: str, n: int, bye: bool = False) -> tuple[bool, str | None]:
        """Whether to apply event ``n`` of ``origin``'s ``boot``, and why events may have been missed (or ``None``)."""
        sender = self._senders.get(origin)
        missed: str | None = None
        if sender is not None and sender.boot == boot:
            if n <= sender.last:
                return False, None
            if n > sender.last + 1:
                missed = f"events {sender.last + 1}-{n - 1} from {origin} did not arrive"
        elif sender is not None and not sender.ended:
            missed = f"{origin} started again without saying goodbye: its last events may have been lost"
        else:
            expected = self._received(origin, boot) + 1
            if n > expected:
                missed = f"the first event from {origin} this server got is number {n}, not {expected}"
        self._senders[origin] = _Sender(boot, n, ended=bye)
        self._baseline.pop(origin, None)
        return True, missed

    def beat(self, peers: Iterable[Mapping[str, Any]], now: float | None = None) -> str | None:
        """At a heartbeat, with the live servers' rows (``events_boot``, ``events_sent``) and the time
        (``time.monotonic()`` unless given): why events may have been missed, or ``None``."""
        now = time.monotonic() if now is None else now
        live = {peer["name"]: peer for peer in peers}
        reasons = []
        for origin, sender in self._senders.items():
            if origin not in live and not sender.ended:
                sender.ended = True
                reasons.append(f"{origin} stopped without saying goodbye")
        for origin, peer in live.items():
            boot, sent = peer.get("events_boot"), int(peer.get("events_sent") or 0)
            if not boot:
                continue  # started a moment ago: it says its boot at its first heartbeat
            known = self._senders.get(origin)
            if known is not None and known.boot != boot and not known.ended:
                known.ended = True  # killed and started again, before it was seen gone or sent anything new
                reasons.append(f"{origin} started again without saying goodbye")
            reason = self._check_count(origin, boot, sent, now)
            if reason:
                reasons.append(reason)
        return "; ".join(reasons) or None

    def _check_count(self, origin: str, boot: str, sent: int, now: float) -> str | None:
        got = self._received(origin, boot)
        behind = self._behind.get(origin)
        if sent <= got:
            self._behind.pop(origin, None)
            return None
        if behind is None or behind.boot != boot or got >= behind.target:
            self._behind[origin] = _Behind(boot, sent, now)
            return None
        behind.beats += 1
        if behind.beats <= PATIENCE or now - behind.since < self.patience:
            return None
        del self._behind[origin]
        self._take_up_to(origin, boot, behind.target)
        return f"{origin} sent {behind.target} events, {got} arrived"

    def _take_up_to(self, origin: str, boot: str, n: int) -> None:
        sender = self._senders.get(origin)
        if sender is None or sender.boot != boot:
            self._senders[origin] = _Sender(boot, n)
            self._baseline.pop(origin, None)
        else:
            sender.last = max(sender.last, n)

    def forgive(self) -> None:
        """After this server dropped what it kept from events: what was missing before no longer matters."""
        for origin, behind in self._behind.items():
            self._take_up_to(origin, behind.boot, behind.target)
        self._behind.clear()

    def senders(self) -> dict[str, dict[str, Any]]:
        """Per sender, the boot and last number taken (for diagnostics)."""
        return {origin: {"boot": s.boot, "last": s.last, "ended": s.ended} for origin, s in self._senders.items()}


__all__ = ["PATIENCE", "PATIENCE_SECONDS", "EventTracker"]
