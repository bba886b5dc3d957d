"""Topic names, subscription patterns, and who may publish or subscribe to what.

A topic name is dot-separated segments of letters, digits, ``_`` and ``-`` (``orders.created``). A pattern
is a name whose segments may also be ``*`` (exactly one segment) or ``**`` (one segment or more)::

    matches("orders.*", "orders.created")          # True
    matches("orders.*", "orders.eu.created")       # False
    matches("orders.**", "orders.eu.created")      # True
    matches("orders.**", "orders")                 # False: '**' stands for at least one segment
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

MAX_TOPIC = 200
_SEGMENT = r"[A-Za-z0-9_-]+"
TOPIC_PATTERN = rf"^{_SEGMENT}(\.{_SEGMENT})*$"
"""What a topic name is (JSON-schema ``pattern``)."""
PATTERN_PATTERN = rf"^({_SEGMENT}|\*|\*\*)(\.({_SEGMENT}|\*|\*\*))*$"
"""What a subscription's topic pattern is (JSON-schema ``pattern``)."""
_TOPIC = re.compile(TOPIC_PATTERN)
_PATTERN = re.compile(PATTERN_PATTERN)


def check_topic(name: str) -> str | None:
    """Why ``name`` is no topic name, or ``None`` when it is one."""
    if not name:
        return "must not be empty"
    if len(name) > MAX_TOPIC:
        return f"must be at most {MAX_TOPIC} characters long"
    if not _TOPIC.fullmatch(name):
        return (
            f"{name!r} is not a topic name: dot-separated segments of letters, digits, '_' and '-' "
            "(such as 'orders.created')"
        )
    return None


def check_pattern(pattern: str) -> str | None:
    """Why ``pattern`` is no topic pattern, or ``None`` when it is one."""
    if not pattern:
        return "must not be empty"
    if len(pattern) > MAX_TOPIC:
        return f"must be at most {MAX_TOPIC} characters long"
    if not _PATTERN.fullmatch(pattern):
        return (
            f"{pattern!r} is not a topic or pattern: dot-separated segments of letters, digits, '_' and '-', "
            "or '*' (one segment) or '**' (one or more), such as 'orders.*'"
        )
    return None


def is_pattern(value: str) -> bool:
    return "*" in value


@lru_cache(maxsize=4096)
def _compiled(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.split("."):
        if segment == "**":
            parts.append(rf"{_SEGMENT}(?:\.{_SEGMENT})*")
        elif segment == "*":
            parts.append(_SEGMENT)
        else:
            parts.append(re.escape(segment))
    return re.compile(r"\.".join(parts))


def matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` is ``pattern`` or one of the topics it stands for."""
    if not is_pattern(pattern):
        return pattern == topic
    return _compiled(pattern).fullmatch(topic) is not None


def matching(patterns: Iterable[str], topic: str) -> list[str]:
    """The patterns of ``patterns`` that ``topic`` matches, in their order."""
    return [p for p in patterns if matches(p, topic)]


__all__ = [
    "MAX_TOPIC",
    "PATTERN_PATTERN",
    "TOPIC_PATTERN",
    "check_pattern",
    "check_topic",
    "is_pattern",
    "matches",
    "matching",
]
