"""The audit log: every admin call that may change something (who, what, when, how it ended), kept in the ODB."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..runtime import Runtime


async def record(runtime: Runtime, actor: str, method: str, path: str, status: int) -> None:
    """Keep one admin action; never raises (a failure to record is logged, the call's answer stands)."""


__all__ = ["record"]
