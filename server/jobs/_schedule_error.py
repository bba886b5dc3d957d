"""The error of the scheduling maths: a trigger or its input is wrong, and which part.

Defined apart from ``triggers`` so that the cron parser (``_cron_parse``) can raise it without importing the
triggers; ``splice.server.jobs.triggers`` re-exports it, and its docstring lists the names ``field`` takes.
"""

from __future__ import annotations

from ..core.errors import BadRequest


class ScheduleError(BadRequest, ValueError):
    """A trigger or its input is wrong; ``field`` names the part (``splice.server.jobs.triggers`` lists the names)."""

    code = "invalid_schedule"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(message)

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "field": self.field}
