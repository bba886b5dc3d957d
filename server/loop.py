"""The event loop a server process runs on: one place to choose it (``bootstrap.run_server`` calls ``run``)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on a new event loop, as ``asyncio.run`` does."""
    asyncio.run(main)
