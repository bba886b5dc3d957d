"""Giving back the memory of module versions that a deployment replaced or removed.

A module is a web of reference cycles (its functions point at its globals, its classes at their methods), so once a
deployment drops it only a full garbage collection frees it, and Python runs one rarely. The server also freezes
what start-up made (``gc.freeze()``), the modules it loaded included, and a collection never looks at frozen
objects. So after each deployment the engine hands the old modules to ``Reclaimer``, which drops what the platform
keeps of them (typing's caches of aliases such as ``Optional[Model]``, ``linecache``'s lines of their files), runs a
full collection (thawing the frozen objects once when an old version is among them), and checks that each old
version's globals are gone (through a weakly referenced marker put in them: the globals outlive the module object,
its functions hold them). One still held (by a call still running on its class) is looked at
again later, with growing delays; one that outlives them all is named in the log, since something outside the
platform (a thread the module started, an object it registered with a library) keeps it.
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import logging
import time
import typing
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

logger = logging.getLogger(__name__)
DELAYS = (0.5, 2.0, 10.0, 60.0, 300.0)
"""Seconds before each collection after a deployment: the first gathers a burst of deployments into one (and keeps
the collection, a pause of tens of milliseconds, out of deployments that follow each other closely: at 50 ms it
landed inside the next one, bench/cluster.py all-3-answer p50 56.6 -> 41.1 ms HTTP bus, 42.1 -> 30.7 ms Redis at
0.5 s); the later ones wait for calls still running on an old version. Each wait starts again at the first delay
when another deployment comes during it (up to ``MAX_WAIT``)."""
MAX_WAIT = 5.0
"""Seconds, at most, that deployments following each other closely put a collection off: a steady stream of them
still gives old versions back every few seconds."""


MARKER = "__splice_retired__"
"""The name under which an old version's globals hold the object whose weak reference says they are gone."""


class _Marker:
    """Lives exactly as long as the globals of the old module version that hold it."""

    __slots__ = ("__weakref__",)


@dataclass(frozen=True)
class Collection:
    """What one collection after a deployment did."""

    freed: int
    """Objects the collector found unreachable."""
    left: list[str]
    """Old module versions still held afterwards."""
    thawed: bool
    """Whether the frozen objects had to be collected too (an old version was loaded before the freeze)."""
    ms: float


class Reclaimer:
    """Collects old module versions once nothing holds them any more; one per engine."""

    def __init__(self, delays: Sequence[float] = DELAYS, max_wait: float = MAX_WAIT) -> None:
        self.delays = tuple(delays)
        self.max_wait = max_wait
        self._retired: list[tuple[str, weakref.ref[_Marker]]] = []
        self._task: asyncio.Task[None] | None = None
        self._fresh = False
        self._since: float | None = None
        """When the first deployment not collected after yet retired its modules (``max_wait`` counts from it)."""
        self.last: Collection | None = None
        """The newest collection's outcome (for tests and the log)."""

    @property
    def pending(self) -> list[str]:
        """Old module versions not collected yet."""
        return [name for name, ref in self._retired if ref() is not None]

    def retire(self, modules: Mapping[str, ModuleType], files: Iterable[str] = ()) -> None:
        """Take note of modules a deployment dropped (and forget the lines of ``files``), then collect soon."""
        for name, module in modules.items():
            # The module's globals outlive the module object (its functions hold them): watch them, through a
            # marker kept in them, rather than the module. Nothing imports an old version any more.
            marker = _Marker()
            module.__dict__[MARKER] = marker
            self._retired.append((name, weakref.ref(marker)))
        for file in files:
            linecache.cache.pop(file, None)  # the old source's lines; a traceback reads the new file afresh
        if not self._retired:
            return
        self._fresh = True
        if self._since is None:
            self._since = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="splice-reclaim")

    async def _run(self) -> None:
        attempt = 0
        while self._retired:
            if self._fresh:  # a new deployment came in: start the delays again
                self._fresh, attempt = False, 0
            if attempt == len(self.delays):
                held = sorted(set(self.pending))
                self._retired.clear()
                logger.warning(
                    "old versions of %s are still held %g s after they were replaced or undeployed; something outside"
                    " the deployed code keeps them (a thread the module started, an object it registered elsewhere)",
                    ", ".join(held),
                    sum(self.delays),
                )
                return
            await asyncio.sleep(self.delays[attempt])
            if self._fresh and self._since is not None and time.monotonic() - self._since < self.max_wait:
                continue  # another deployment came meanwhile: a collection now would land among the next ones
            attempt += 1
            self.collect()

    def collect(self) -> Collection:
        """One full collection now; returns what it did (``pending`` says what is left)."""
        started = time.perf_counter()
        self._since = None
        clear_platform_caches()
        freed = gc.collect()
        thawed = False
        if self.pending and gc.get_freeze_count():
            # An old version was frozen with what start-up made: collect everything once, then freeze the survivors
            # again so that Python's own collections keep skipping them.
            gc.unfreeze()
            freed += gc.collect()
            gc.freeze()
            thawed = True
        self._retired = [(name, ref) for name, ref in self._retired if ref() is not None]
        self.last = Collection(freed, self.pending, thawed, round((time.perf_counter() - started) * 1000, 3))
        logger.debug(
            "collected after a deployment: %s objects freed, %s old module versions left, %.1f ms%s",
            freed,
            len(self.last.left),
            self.last.ms,
            " (frozen objects included)" if thawed else "",
        )
        return self.last

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


def clear_platform_caches() -> None:
    """Empty the caches of the standard library that keep user classes alive after their module is gone.

    ``typing`` caches every alias it makes (``Optional[Model]``, ``list[Model]`` under ``List``) with the classes in
    it, and a class keeps its module's globals through its methods. Clearing costs only the rebuilding of aliases.
    """
    for clear in getattr(typing, "_cleanups", ()):
        clear()
