"""``GET /splice/admin/audit``: the audit log (who did what, when), newest first."""

from __future__ import annotations

from .operations import Operation

OPERATIONS: list[Operation] = []

__all__ = ["OPERATIONS"]
