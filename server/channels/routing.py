"""Matching REST channel paths: pure functions and a small immutable router.

Patterns are paths with parameters: ``/orders/{id}`` (one segment), ``/orders/{id:int}`` (digits
only) and ``/files/{rest:path}`` (the rest of the path, slashes included). When several channels
match, the one with more literal text wins, so ``/orders/new`` beats ``/orders/{id}``; at equal literal
text ``{id:int}`` beats ``{id}``, which beats ``{rest:path}``. ``HEAD`` is allowed wherever ``GET`` is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|path))?\}")
_CONVERTERS = {"str": "[^/]+", "int": "[0-9]+", "path": ".+"}
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
RESERVED_PREFIX = "/splice/"


def check_pattern(pattern: str) -> str | None:
    """What is wrong with a channel path pattern, or ``None``."""
    if not pattern.startswith("/"):
        return f"a channel path must start with '/': {pattern!r}"
    if pattern.startswith(RESERVED_PREFIX) or pattern == "/splice":
        return f"paths under {RESERVED_PREFIX} are Splice's own: {pattern!r}"
    rest = _PARAM.sub("", pattern)
    if "{" in rest or "}" in rest:
        return f"bad parameter in {pattern!r}: use {{name}}, {{name:int}} or {{name:path}}"
    names = [m.group(1) for m in _PARAM.finditer(pattern)]
    if len(names) != len(set(names)):
        return f"a parameter appears twice in {pattern!r}"
    return None


def parameters(pattern: str) -> list[tuple[str, str]]:
    """Each parameter of ``pattern`` with its kind (``str``, ``int`` or ``path``), in order."""
    return [(m.group(1), m.group(2) or "str") for m in _PARAM.finditer(pattern)]


def template(pattern: str) -> str:
    """``pattern`` as a URI template without converters (``/files/{name:path}`` -> ``/files/{name}``), as OpenAPI
    writes paths."""
    return _PARAM.sub(r"{\1}", pattern)


def compile_pattern(pattern: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regular expression for ``pattern`` and its parameter names; raises ``ValueError`` if it is bad."""
    problem = check_pattern(pattern)
    if problem:
        raise ValueError(problem)
    regex, names, last = "^", [], 0
    for match in _PARAM.finditer(pattern):
        regex += re.escape(pattern[last : match.start()])
        regex += f"(?P<{match.group(1)}>{_CONVERTERS[match.group(2) or 'str']})"
        names.append(match.group(1))
        last = match.end()
    # \Z, not $: "$" also matches before a trailing newline, so "/orders/5\n" would match "{id:int}". DOTALL: a
    # {rest:path} takes a newline (a request's %0A) as {name} does, instead of answering 404.
    regex += re.escape(pattern[last:]) + r"\Z"
    return re.compile(regex, re.DOTALL), tuple(names)


def check_methods(methods: Iterable[str]) -> list[str]:
    """Upper-cased methods; raises ``ValueError`` on an unknown one."""
    out = sorted({m.upper() for m in methods})
    unknown = [m for m in out if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown HTTP method {', '.join(unknown)} (use {', '.join(sorted(METHODS))})")
    return out


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    methods: frozenset[str]
    service: str
    security: str | None = None
    regex: re.Pattern[str] = field(init=False, compare=False)
    params: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex, params = compile_pattern(self.pattern)
        object.__setattr__(self, "regex", regex)
        object.__setattr__(self, "params", params)

    @property
    def literal_length(self) -> int:
        return len(_PARAM.sub("", self.pattern))

    @property
    def rank(self) -> tuple[int, int, int, int]:
        """Sorts the most specific route first: most literal text, then fewest ``path`` and ``str`` parameters."""
        kinds = [kind for _, kind in parameters(self.pattern)]
        return (-self.literal_length, kinds.count("path"), kinds.count("str"), len(kinds))


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


@dataclass(frozen=True)
class NotAllowed:
    allowed: frozenset[str]


class Router:
    """Immutable: build a new one when channels change."""

    def __init__(self, routes: Iterable[Route]) -> None:
        ordered = sorted(routes, key=lambda r: (*r.rank, r.name))
        self.routes = tuple(ordered)
        self._static: dict[str, list[Route]] = {}
        for route in ordered:
            if not route.params:
                self._static.setdefault(route.pattern, []).append(route)
        self._dynamic = tuple(r for r in ordered if r.params)

    def match(self, method: str, path: str) -> Match | NotAllowed | None:
        allowed: set[str] = set()
        for route in self._static.get(path, ()):
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return Match(route, {})
            allowed |= route.methods
        for route in self._dynamic:
            found = route.regex.match(path)
            if found is None:
                continue
            if method in route.methods or (method == "HEAD" and "GET" in route.methods):
                return Match(route, found.groupdict())
            allowed |= route.methods
        if "GET" in allowed:
            allowed.add("HEAD")
        return NotAllowed(frozenset(allowed)) if allowed else None
