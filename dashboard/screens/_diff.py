"""Pure helpers of the Deployments screen: a unified diff as marked lines, and each server's outcome in words."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DiffLine:
    kind: str
    """``head`` (the two file names), ``hunk`` (``@@ ... @@``), ``add``, ``del`` or ``same``."""
    text: str


def unified(before: str, after: str, before_name: str, after_name: str, context: int = 3) -> list[DiffLine]:
    """``difflib.unified_diff`` of two sources, each line with its kind (the +/- sign stays in the text)."""
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), before_name, after_name, n=context, lineterm=""
    )
    marked = []
    for index, line in enumerate(lines):
        # The first two lines are the ---/+++ headers; later lines may start with "---" too (a removed "--" line).
        if index < 2:
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        marked.append(DiffLine(kind, line))
    return marked


@dataclass(frozen=True)
class Outcome:
    server: str
    ok: bool
    words: str
    """``deployed``, ``failed: <error>``, ``timed out``... (never colour alone)."""
    timing: str
    """``14.8 ms (sync 8.4 ms)``, or empty when the server answered the request itself."""


GOOD = frozenset({"deployed", "undeployed", "rolled_back", "removed", "ok"})


def outcomes(servers: list[dict[str, Any]] | None) -> list[Outcome]:
    """Each server's outcome of a change as the admin API's ``servers`` list gives it."""
    found = []
    for entry in servers or []:
        status = str(entry.get("status") or "unknown")
        error = entry.get("error")
        words = status.replace("_", " ")
        if status not in GOOD and error:
            words = f"{words}: {error}"
        timing = ""
        if entry.get("ms") is not None:
            timing = f"{float(entry['ms']):.1f} ms"
            if entry.get("sync_ms") is not None:
                timing += f" (sync {float(entry['sync_ms']):.1f} ms)"
        found.append(Outcome(str(entry.get("server", "?")), status in GOOD, words, timing))
    return found


def short_sha(sha: str | None) -> str:
    return (sha or "")[:12]


__all__ = ["DiffLine", "Outcome", "outcomes", "short_sha", "unified"]
