"""The audit log: every admin call that may change something (who, what, when, how it ended), kept in the ODB.

``app._admin`` calls ``record`` once the answer is sent, so the insert does not delay it. Only the actor, the
method, the path, the status, the server and the cid are kept: never a body, a query string or a header (a
token or a secret travels in those).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ..core.context import current_cid
from ..odb import audit

if TYPE_CHECKING:
    from ..runtime import Runtime

logger = logging.getLogger(__name__)

RECORD_TIMEOUT = 2.0
"""Seconds an insert may take before it is given up (and logged): a slow ODB must not hold the call's task."""


async def record(runtime: Runtime, actor: str, method: str, path: str, status: int) -> None:
    """Keep one admin action; never raises (a failure to record is logged, the call's answer stands)."""
    try:
        async with asyncio.timeout(RECORD_TIMEOUT):
            await audit.add(runtime.repository, actor, method, path, status, runtime.server.name, current_cid.get())
    except asyncio.CancelledError:
        raise
    except Exception:  # whatever the driver raises: the admin call succeeded or failed on its own
        logger.exception("the audit log could not keep %s %s %s -> %s", actor, method, path, status)


__all__ = ["record"]
