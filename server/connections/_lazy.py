"""A connection's two clients, the blocking one and the async one, each made on first use and closed together.

``Connections`` opens a connection on the event loop, so opening does no I/O: a kind makes its clients when a
call first asks for one, and ``client(True)`` may be asked for by several worker threads at once. The SQL and
Redis kinds share that shape; this is it, once.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any


class ClientPair:
    """The blocking and the async client of one connection, made by ``make(blocking)`` once each, whichever
    thread asks first; after ``aclose`` asking raises, naming ``what`` (``SQL connection 'crm'``)."""

    def __init__(self, what: str, make: Callable[[bool], Any]) -> None:
        self._what = what
        self._make = make
        self._made: dict[bool, Any] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, blocking: bool) -> Any:
        made = self._made.get(blocking)
        if made is not None:
            return made
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._what} was closed (it was replaced or removed)")
            made = self._made.get(blocking)
            if made is None:
                made = self._made[blocking] = self._make(blocking)
        return made

    async def aclose(
        self, close_async: Callable[[Any], Awaitable[object]], close_blocking: Callable[[Any], object]
    ) -> None:
        """Refuse new clients, then close those made: the async one on the loop, the blocking one in a worker
        thread (closing its pool may wait on the network)."""
        import anyio.to_thread

        with self._lock:
            self._closed = True
            made, self._made = self._made, {}
        if False in made:
            await close_async(made[False])
        if True in made:
            await anyio.to_thread.run_sync(close_blocking, made[True])


__all__ = ["ClientPair"]
