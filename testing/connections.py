"""Outgoing connections in unit tests: real ones to test doubles, stubbed REST answers, stand-in clients.

A service under test reaches ``self.out.rest["billing"]`` as it does on a server; what the name gives is what
the test defined on ``splice_services`` (a ``ServiceHarness``), through ``HarnessConnections``:

- ``connect("billing", kind="rest", address="http://127.0.0.1:8123", token="t")`` opens a real connection of that
  kind with the code a server uses (``splice.server.connections.KINDS[kind].open``), so the service gets the
  same clients (pools, auth, timeouts, retries, the call's ``X-Splice-CID``): point it at a test double, a
  SQLite file in ``tmp_path``, the test Redis or RabbitMQ;
- ``stub_rest("billing", {"GET /invoices/7": {"status": 200, "json": {...}}})`` (or a function of the request)
  answers without a network: the service still gets a real httpx client, the same one a server gives (base
  URL, headers, auth, ``X-Splice-CID``, retries of idempotent methods), whose transport is an
  ``httpx.MockTransport``; ``requests("billing")`` gives the requests it sent, in order;
- ``stub_connection("cache", kind="redis", client=fake)`` makes ``self.out.redis["cache"]`` give ``fake``, in
  ``def handle`` and ``async def handle`` alike.

A name the test did not define raises the same ``UnknownConnection`` as on a server. Connections are opened on
first use and closed when the harness call ends (``ServiceHarness.acall``): each call runs on an event loop of
its own in a plain test, and async clients must not outlive their loop.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import ValidationError

from splice.server.connections import KINDS, Connection, OutgoingSpec
from splice.server.connections.rest import RestSpec, open_rest
from splice.server.core.outgoing import InvalidConnection, unknown
from splice.server.core.validation import problems

SERVER = "test"
"""The server name connections opened here report (AMQP connection names, pings)."""
STUB_ADDRESS = "http://stub.invalid"
"""A stubbed REST connection's base URL unless the test gives one (``.invalid`` never resolves)."""
ANSWER_KEYS = ("status", "json", "text", "content", "headers")

Answer = httpx.Response | Mapping[str, Any]
"""A stubbed answer: an ``httpx.Response``, or ``{"status": 200, "json": ...}`` (or ``text``, ``content``,
``headers``; status 200 when left out)."""
Handler = Callable[[httpx.Request], Answer]
_ROUTE = re.compile(r"([A-Z]+) (/\S*)")


class UnstubbedRequest(AssertionError):
    """A service sent a request that no stubbed answer matches: the test did not expect it."""


@dataclass
class _Defined:
    """One name the test defined: a connection to open (real or stubbed REST), or a stand-in client."""

    kind: str
    opener: Callable[[], Connection] | None = None
    stand_in: Any = None
    opened: Connection | None = None
    requests: list[httpx.Request] | None = field(default=None, repr=False)


def _nothing() -> None:
    """Releasing a lease: connections here live until the harness call ends."""


class HarnessConnections:
    """``self.out``'s source in a ``ServiceHarness`` (a ``ConnectionSource``): what the test defined, by name."""

    def __init__(self) -> None:
        self._defined: dict[str, _Defined] = {}
        self._retired: list[Connection] = []
        self._lock = threading.Lock()

    # -- defining ----------------------------------------------------------------------------------

    def connect(
        self,
        name: str,
        *,
        kind: str,
        address: str,
        username: str | None = None,
        password: str | None = None,
        key: str | None = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        """A real connection of ``kind`` (rest, sql, redis, amqp) to ``address``, with the kind's ``options``
        (``timeout=2``, ``pool_size=1``...) and secrets, checked and opened as a server does."""
        spec = _spec(name, kind, address, username, options)
        secrets = _secrets(spec, password=password, key=key, token=token)
        opener = KINDS[kind].open

        def opened() -> Connection:
            return opener(spec, secrets, SERVER)

        self._define(name, _Defined(kind, opened, opened=_checked(name, opened)))

    def stub_rest(
        self,
        name: str,
        answers: Mapping[str, Answer] | Handler,
        *,
        address: str = STUB_ADDRESS,
        username: str | None = None,
        password: str | None = None,
        key: str | None = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        """A REST connection whose requests are answered by ``answers``: ``{"GET /invoices/7": answer}`` (a path
        relative to ``address``'s; ``"GET /invoices?status=open"`` matches that query only) or a function of the
        ``httpx.Request`` returning an answer. Every request is recorded (``requests``)."""
        spec = _spec(name, "rest", address, username, options)
        assert isinstance(spec, RestSpec)
        secrets = _secrets(spec, password=password, key=key, token=token)
        recorded: list[httpx.Request] = []
        network = httpx.MockTransport(_handler(name, answers, recorded, httpx.URL(spec.address).path))

        def opened() -> Connection:
            return open_rest(spec, secrets, SERVER, network)

        self._define(name, _Defined("rest", opened, opened=_checked(name, opened), requests=recorded))

    def stub_connection(self, name: str, *, kind: str, client: Any) -> None:
        """``self.out.<kind>[name]`` gives ``client`` (any object: a fake Redis, a recording publisher...)."""
        if not kind or not isinstance(kind, str):
            raise ValueError(f"stub_connection({name!r}): kind names the kind of connection, such as 'redis'")
        self._define(name, _Defined(kind, stand_in=client))

    def _define(self, name: str, defined: _Defined) -> None:
        with self._lock:
            old = self._defined.get(name)
            if old is not None and old.opened is not None:
                self._retired.append(old.opened)
            self._defined[name] = defined

    def requests(self, name: str) -> list[httpx.Request]:
        """The requests the services sent through stubbed REST connection ``name``, in order."""
        with self._lock:
            defined = self._defined.get(name)
        if defined is None or defined.requests is None:
            raise ValueError(f"'{name}' is not a stubbed REST connection (stub_rest records the requests it answers)")
        return list(defined.requests)

    # -- ConnectionSource --------------------------------------------------------------------------

    def lease(self, kind: str, name: str, blocking: bool) -> tuple[Any, Callable[[], None]]:
        with self._lock:
            defined = self._defined.get(name)
            if defined is None or defined.kind != kind:
                raise unknown(kind, name, {n: d.kind for n, d in self._defined.items()})
            if defined.opener is None:
                return defined.stand_in, _nothing
            if defined.opened is None:
                defined.opened = defined.opener()
            connection = defined.opened
        return connection.client(blocking), _nothing

    def names(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(name for name, defined in self._defined.items() if defined.kind == kind)

    # -- closing -----------------------------------------------------------------------------------

    def opened(self) -> bool:
        """Whether a connection is open now (``aclose`` has something to close)."""
        with self._lock:
            return bool(self._retired) or any(d.opened is not None for d in self._defined.values())

    async def aclose(self) -> None:
        """Close every open connection; each opens again on its next use (on the event loop of that call)."""
        with self._lock:
            doomed = [*self._retired, *(d.opened for d in self._defined.values() if d.opened is not None)]
            self._retired = []
            for defined in self._defined.values():
                defined.opened = None
        for connection in doomed:
            await connection.aclose()


def _spec(name: str, kind: str, address: str, username: str | None, options: Mapping[str, Any]) -> OutgoingSpec:
    known = KINDS.get(kind)
    if known is None:
        raise InvalidConnection(f"outgoing connection '{name}': no kind {kind!r} (known: {', '.join(sorted(KINDS))})")
    values = {"name": name, "kind": kind, "address": address, "username": username, **options}
    try:
        return known.spec.model_validate(values)
    except ValidationError as exc:
        found = "; ".join(str(problem) for problem in problems(exc))
        raise InvalidConnection(f"outgoing connection '{name}': {found}") from None


def _secrets(spec: OutgoingSpec, **given: str | None) -> dict[str, str]:
    secrets = {secret: value for secret, value in given.items() if value is not None}
    for secret in secrets:
        if secret not in spec.SECRETS:
            taken = ", ".join(spec.SECRETS)
            raise InvalidConnection(
                f"outgoing connection '{spec.name}': a {spec.kind} connection takes no {secret} (its secrets: {taken})"
            )
    return secrets


def _checked(name: str, opener: Callable[[], Connection]) -> Connection:
    """Open it now, so a definition that cannot work fails in the test's own line (opening does no I/O)."""
    try:
        return opener()
    except ValueError as exc:
        raise InvalidConnection(f"outgoing connection '{name}': {exc}") from None


def _handler(
    name: str, answers: Mapping[str, Answer] | Handler, recorded: list[httpx.Request], base: str
) -> Callable[[httpx.Request], httpx.Response]:
    """The ``MockTransport`` handler: record the request, find its answer."""
    if not callable(answers):
        for route, answer in answers.items():
            if not _ROUTE.fullmatch(route):
                raise ValueError(
                    f"stub_rest({name!r}): a key is a method and a path, like 'GET /invoices/7'; got {route!r}"
                )
            _response(name, route, answer)  # refuses a malformed answer now, not when the service sends
    prefix = base.rstrip("/")

    def handle(request: httpx.Request) -> httpx.Response:
        recorded.append(request)
        if callable(answers):
            return _response(name, "the handler's answer", answers(request))
        path = request.url.path
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        query = request.url.query.decode("ascii")
        tried = [f"{request.method} {path}?{query}"] if query else []
        tried.append(f"{request.method} {path}")
        for route in tried:
            if route in answers:
                return _response(name, route, answers[route])
        stubbed = ", ".join(answers) or "none"
        raise UnstubbedRequest(f"outgoing connection '{name}': no stubbed answer for {tried[0]} (stubbed: {stubbed})")

    return handle


def _response(name: str, route: str, answer: Answer) -> httpx.Response:
    if isinstance(answer, httpx.Response):  # a copy: one Response object cannot answer two requests
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())
    if not isinstance(answer, Mapping):
        raise TypeError(
            f"stub_rest({name!r}), {route}: an answer is an httpx.Response or a dict of {', '.join(ANSWER_KEYS)};"
            f" got {type(answer).__name__}"
        )
    unknown_keys = sorted(set(answer) - set(ANSWER_KEYS))
    bodies = [key for key in ("json", "text", "content") if key in answer]
    if unknown_keys or len(bodies) > 1:
        wrong = f"unknown {', '.join(unknown_keys)}" if unknown_keys else f"{' and '.join(bodies)}: give one body"
        raise ValueError(f"stub_rest({name!r}), {route}: {wrong} (an answer has {', '.join(ANSWER_KEYS)})")
    body = {key: answer[key] for key in bodies}
    return httpx.Response(answer.get("status", 200), headers=answer.get("headers"), **body)


__all__ = ["Answer", "Handler", "HarnessConnections", "UnstubbedRequest"]
