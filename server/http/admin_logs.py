"""``GET /splice/admin/logs``: this server's own log, tailed and filtered (the dashboard's Logs screen). Stub."""

from __future__ import annotations

from .operations import Operation

OPERATIONS: list[Operation] = []
