"""Per-service metrics: ``GET /splice/admin/metrics`` (JSON) and ``/splice/metrics`` (Prometheus text). Stub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute

from .operations import Operation

if TYPE_CHECKING:
    from ..runtime import Runtime

OPERATIONS: list[Operation] = []


def public_routes(runtime: Runtime) -> list[BaseRoute]:
    """Routes outside ``/splice/admin`` (``/splice/metrics``), which check the token themselves."""
    return []
