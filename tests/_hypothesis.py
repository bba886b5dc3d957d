"""Hypothesis settings shared by the property tests: a fixed, derandomized budget, so CI time is bounded and a
failure repeats on every run.

``SPLICE_HYPOTHESIS_SEARCH=N`` (an environment variable) turns a run into a search: random inputs, N times the
examples, for looking for new counter-examples by hand; a counter-example found that way becomes an ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SEARCH = int(os.environ.get("SPLICE_HYPOTHESIS_SEARCH", "0") or "0")


def budget(examples: int) -> settings:
    """Settings for a property test: ``examples`` cases, derandomized, no deadline, no example database."""
    return settings(
        max_examples=examples * max(SEARCH, 1),
        deadline=None,
        derandomize=not SEARCH,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )
