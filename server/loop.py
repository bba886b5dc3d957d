"""The event loop a server process runs on: one place to choose it (``bootstrap.run_server`` calls ``run``).

A server runs on uvloop (libuv under asyncio's API), as Hypercorn's ``worker_class = "uvloop"`` and uvicorn's
``--loop uvloop`` do: its transports, timers and callbacks are C, which takes about a fifth off each request's
cost (``bench/rest.py``). Where uvloop cannot be imported (a platform without a wheel), the standard loop runs.

``defer_httpx_cli`` is the other thing a long-running process (a server, a scheduler) does before its imports.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import types
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


def defer_httpx_cli() -> None:
    """Keep ``import httpx`` from importing httpx's own command-line client until someone runs it.

    ``httpx/__init__.py`` imports ``httpx._main`` whenever click, rich and pygments are installed (a development
    environment, or any other tool that brought them): +4.5 MiB of RSS and ~0.1 s of CPU in every process that
    imports httpx, for a command line a server never runs. Until ``httpx.main()`` is called, ``httpx._main`` is a
    stand-in whose ``main`` imports the real module and runs it. Call it before anything imports httpx; once
    httpx is imported it does nothing."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    stand_in = types.ModuleType("httpx._main", "httpx's command line, imported when httpx.main() is first called")

    def main(*args: object, **kwargs: object) -> object:
        if sys.modules.get("httpx._main") is stand_in:
            del sys.modules["httpx._main"]
        from httpx._main import main as real

        return real(*args, **kwargs)

    stand_in.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stand_in


__all__ = ["Kind", "defer_httpx_cli", "factory", "run"]
