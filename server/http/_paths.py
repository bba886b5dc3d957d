"""What channels share: finding a WebSocket or JSON-RPC channel by path, and checking any channel's security."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..channels.routing import Match, Route, Router

if TYPE_CHECKING:
    from ..runtime import LiveConfig, Runtime

S = TypeVar("S")


class PathTable(Generic[S]):
    """The live channels of one kind by path (parameters as REST's: ``/rooms/{room}``), rebuilt when they change."""

    def __init__(self, live: LiveConfig, kind: str) -> None:
        self._live = live
        self._kind = kind
        self._specs: list[Any] = []
        self._router = Router([])
        self._named: dict[str, S] = {}

    def _refresh(self) -> None:
        specs: list[Any] = self._live.of(self._kind)
        if specs is self._specs or (not specs and not self._specs):
            return
        routes = [Route(s.name, s.path, frozenset({"GET"}), getattr(s, "service", ""), s.security) for s in specs]
        self._router, self._named, self._specs = Router(routes), {s.name: s for s in specs}, specs

    def match(self, path: str) -> tuple[S, dict[str, str]] | None:
        """The channel at ``path`` and the path's parameters, or ``None``."""
        self._refresh()
        if not self._named:
            return None
        found = self._router.match("GET", path)
        return (self._named[found.route.name], found.params) if isinstance(found, Match) else None

    def named(self, name: str) -> S | None:
        """The channel named ``name`` as it is now (``None`` once it is gone)."""
        self._refresh()
        return self._named.get(name)


def authorized(runtime: Runtime, security: str | None, headers: Mapping[str, str]) -> bool:
    """Whether ``headers`` carry the credentials the security definition ``security`` asks for (as REST checks)."""
    if security is None:
        return True
    definition = runtime.securities.get(security)
    return definition is not None and runtime.verifier.check(definition, headers)


def challenge(runtime: Runtime, security: str | None) -> list[tuple[bytes, bytes]]:
    """The ``WWW-Authenticate`` header a 401 answer carries for a Basic definition (none for an API key)."""
    definition = runtime.securities.get(security) if security else None
    return [(b"www-authenticate", b'Basic realm="splice"')] if definition and definition.kind == "basic" else []


def header_of(runtime: Runtime, security: str | None) -> str | None:
    """The (lower-case) header an API-key definition reads, or ``None`` for any other kind."""
    definition = runtime.securities.get(security) if security else None
    if definition is None or definition.kind != "apikey":
        return None
    return (definition.header or "x-api-key").lower()
