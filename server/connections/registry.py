"""The kinds of outgoing connection: each is one module that registers its spec and how to open it.

A kind module (``rest.py``, ``sql.py``, ``redis.py``, ``amqp.py``) defines a pydantic spec, a subclass of
``OutgoingSpec`` with ``kind: Literal["<kind>"]`` and its own options, and a function that opens a
``Connection`` from a checked spec and its secrets, then calls ``register(Kind(...))``. Adding a kind later
is one module and one line in ``kinds.py``. Modules import their client library (httpx, SQLAlchemy,
redis-py, aio-pika) inside ``open``, not at import time: a server pays only for the kinds it uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..channels.specs import Name

logger = logging.getLogger("splice.outgoing")


class OutgoingSpec(BaseModel):
    """What every outgoing connection has: a name, a kind, an address (URL or DSN, never with a password)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    """The secrets this kind takes (``password``, ``key``, ``token``): set in the admin API body, named by
    ``<secret>_env`` in splice.toml, kept encrypted in the ODB, never shown."""

    name: Name
    kind: str
    address: str = Field(min_length=1, max_length=2000, description="a URL or DSN, without its password")
    username: str | None = Field(default=None, max_length=200)


class Connection(Protocol):
    """One outgoing connection on one server, opened from its spec; its clients are pooled and made on first use."""

    def client(self, blocking: bool) -> Any:
        """What ``self.out.<kind>[name]`` gives: the blocking client in a worker thread, else the async one."""
        ...

    async def ping(self) -> str:
        """Reach the remote system once; answers a short description, raises if it cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Close every client and pool (after the last call using them ended)."""
        ...


Opener = Callable[[Any, Mapping[str, str], str], Connection]
"""``open(spec, secrets, server_name)``: ``secrets`` maps ``password``/``key``/``token`` to their values."""


@dataclass(frozen=True)
class Kind:
    name: str
    spec: type[OutgoingSpec]
    open: Opener


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind


def log_call(kind: str, name: str, what: str, started: float, error: BaseException | None = None) -> None:
    """One line per outgoing call, with its duration (the cid comes from the log filter)."""
    ms = (time.perf_counter() - started) * 1000
    if error is None:
        logger.info("%s %s: %s in %.1f ms", kind, name, what, ms)
    else:
        logger.warning("%s %s: %s failed after %.1f ms: %s", kind, name, what, ms, error)


__all__ = ["KINDS", "Connection", "Kind", "Opener", "OutgoingSpec", "log_call", "register"]
