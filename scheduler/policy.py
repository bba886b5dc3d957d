"""The pure decisions of the scheduler: which slot of a due job to run now, and how long to wait before a retry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from splice.server.jobs import MAX_BACKOFF, Trigger, count_between, last_at_or_before, next_after


@dataclass(frozen=True)
class Decision:
    """What to do with a job whose next slot is due.

    ``slot``: the slot to claim (``None``: nothing is due after all); ``run``: run it, or record it as
    skipped; ``missed``: earlier slots folded into it, never run on their own; ``next_due``: the job's
    next slot after this one (``None``: the trigger has no more).
    """

    slot: datetime | None
    run: bool
    missed: int
    next_due: datetime | None
    reason: str = field(default="")


def decide(trigger: Trigger, due: datetime, now: datetime, misfire: str, grace: float) -> Decision:
    """The one slot to claim now for a job whose next slot, ``due``, has come.

    Only the latest slot at or before ``now`` is ever run: slots before it are missed (counted, never
    run, so a scheduler that was down never bursts). The latest slot runs if it is at most ``grace``
    seconds late; later than that it was missed too, and then ``misfire`` decides: ``run_once`` runs it
    (once, whatever the number of slots missed), ``skip`` records it as skipped.
    """
    latest = last_at_or_before(trigger, now)
    if latest is None or latest < due:
        # No slot in [due, now]. A ``due`` that has passed is no slot of the trigger (a stored time from
        # other zone rules, say): answer the real next slot, not ``due`` again, which would be due forever.
        return Decision(None, False, 0, due if due > now else next_after(trigger, now))
    missed = count_between(trigger, due - timedelta(microseconds=1), latest) - 1 if latest > due else 0
    late = (now - latest).total_seconds()
    following = next_after(trigger, latest)
    if late <= grace:
        return Decision(latest, True, missed, following)
    if misfire == "run_once":
        return Decision(latest, True, missed, following, f"{late:.1f} s late: run once (misfire policy run_once)")
    return Decision(latest, False, missed, following, f"{late:.1f} s late: skipped (misfire policy skip)")


def retry_delay(attempt: int, backoff: float) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed: doubling, capped."""
    doublings = max(attempt - 1, 0)
    # ldexp scales by a power of two exactly; comparing first keeps a large attempt from overflowing a float.
    if backoff >= math.ldexp(MAX_BACKOFF, -doublings):
        return float(MAX_BACKOFF)
    return math.ldexp(backoff, doublings)
