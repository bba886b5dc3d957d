"""The server's side of the isolation worker (see ``_isolate_worker``): one warm process, one job at a time."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

logger = logging.getLogger(__name__)


class IsolationUnavailable(Exception):
    """The worker died or hung on the same job twice."""


class Isolation:
    """Sends import jobs to a warm worker process, restarting it if it dies or hangs."""

    def __init__(self, python: str = sys.executable) -> None:
        self._python = python
        self._proc: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            await self._ensure()

    async def _ensure(self) -> asyncio.subprocess.Process:
        if self._proc is None or self._proc.returncode is not None:
            self._release()
            self._proc = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "splice.server.deploy._isolate_worker",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 26,
            )
        return self._proc

    async def check(self, job: dict[str, Any]) -> dict[str, Any]:
        """Run one job; the answer comes within the job's timeout plus a margin, or the worker is replaced."""
        async with self._lock:
            for attempt in (1, 2):
                proc = await self._ensure()
                assert proc.stdin is not None
                assert proc.stdout is not None
                try:
                    proc.stdin.write(json.dumps(job).encode() + b"\n")
                    await proc.stdin.drain()
                    line = await asyncio.wait_for(proc.stdout.readline(), float(job["timeout"]) + 10)
                except (TimeoutError, ConnectionError, BrokenPipeError) as exc:
                    logger.warning("isolation worker did not answer (%s); restarting it", exc)
                    line = b""
                if line:
                    result: dict[str, Any] = json.loads(line)
                    return result
                await self._kill()
                if attempt == 2:
                    break
            raise IsolationUnavailable("the isolation worker failed twice in a row")

    async def _kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()
        self._release()

    def _release(self) -> None:
        """Close our end of a worker's pipes (its process has ended or is told to end): a pipe left open until the
        event loop closes is a resource warning, and a file descriptor held meanwhile."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.stdin is not None:
            proc.stdin.close()

    async def close(self) -> None:
        async with self._lock:
            proc = self._proc
            self._release()  # the worker ends when its stdin does
            if proc is not None and proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 2)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
