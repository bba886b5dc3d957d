"""The event loop a server process runs on: one place to choose it (``bootstrap.run_server`` calls ``run``).

A server runs on uvloop (libuv under asyncio's API), as Hypercorn's ``worker_class = "uvloop"`` and uvicorn's
``--loop uvloop`` do: its transports, timers and callbacks are C, which takes about a fifth off each request's
cost (``bench/rest.py``). Where uvloop cannot be imported (a platform without a wheel), the standard loop runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

Kind = Literal["uvloop", "asyncio"]
logger = logging.getLogger(__name__)


def factory(kind: Kind = "uvloop") -> tuple[Kind, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop that ``kind`` asks for and a function making one; ``asyncio`` when uvloop is not installed."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio", asyncio.new_event_loop
        return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, None], kind: Kind = "uvloop") -> None:
    """Run ``main`` to its end on a new event loop (uvloop unless told otherwise), as ``asyncio.run`` does."""
    chosen, make = factory(kind)
    logger.info("event loop: %s", chosen)
    with asyncio.Runner(loop_factory=make) as runner:
        runner.run(main)


__all__ = ["Kind", "factory", "run"]
