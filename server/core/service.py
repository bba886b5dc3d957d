"""The service model: what users subclass, and the request and response a service sees.

A service is a class with a ``handle()`` method, plain or ``async def``. Splice makes a new instance
for every call, so nothing is shared between calls through ``self``::

    from splice.server import Service

    class GetOrder(Service):
        name = "orders.get"                 # optional; else derived from module and class

        class Input:                        # or a pydantic model: class Input(BaseModel)
            id: int

        async def handle(self) -> None:
            order_id = self.request.input.id    # or self.request.input["id"]
            customer = await self.ainvoke("crm.get-customer", {"order": order_id})
            self.response.payload = {"id": order_id, "customer": customer}

``self.request.scheduler`` (a ``SchedulerRun``) says which job, run and slot started a call, when the scheduler
did: ``self.request.scheduler.job``, ``.job_id``, ``.run``, ``.slot``, ``.kind``, ``.attempt``, ``.missed``,
``.scheduler`` (``self.request.scheduler["job"]`` too).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from .context import current_cid
from .outgoing import Out
from .pubsub import PublishResult
from .schedule import Schedule

if TYPE_CHECKING:
    from .cache import Caches
    from .invoker import Invoker
    from .pubsub import PubSubMessage
    from .websockets import Hub, WebSocket


class InputView(dict[str, Any]):
    """``self.request.input``: the declared input fields, by attribute (``.id``) or by key (``["id"]``).

    A ``dict`` of field name to value, as it always was (``json.dumps`` and ``dict(...)`` take it), with
    attribute access on top. ``model_instance`` is the checked pydantic instance when the service declares
    ``Input``. A declared field wins over a method of the same name: with a field ``items``, ``.items`` is the
    field (``dict.items(self.request.input)`` still lists the pairs).
    """

    __slots__ = ("_fields", "_instance")

    def __init__(self, values: Mapping[str, Any], instance: Any = None, fields: Iterable[str] = ()) -> None:
        super().__init__(values)
        self._instance = instance
        self._fields = frozenset(fields)

    def __getattribute__(self, name: str) -> Any:
        if name[:1] != "_" and name in object.__getattribute__(self, "_fields"):
            return dict.__getitem__(self, name)
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        """Keys that are no declared field: those of a payload when the service declares no ``Input``."""
        if not name.startswith("_"):
            try:
                return dict.__getitem__(self, name)
            except KeyError:
                pass
        raise AttributeError(f"the input has no field {name!r}")

    @property
    def model_instance(self) -> Any:
        """The checked instance of the service's ``Input`` model (``None`` when it declares none)."""
        return self._instance

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (dict(self), self._instance, self._fields)

    def __repr__(self) -> str:
        return f"InputView({dict.__repr__(self)})"


@dataclass(frozen=True)
class SchedulerRun(dict[str, Any]):
    """``self.request.scheduler``: the scheduler's run that started this call.

    Attributes (``.job``) and keys (``["job"]``) alike; also a read-only ``dict``, so ``json.dumps`` and
    ``dict(...)`` take it as they took the plain dict it used to be.
    """

    job: str
    job_id: int
    run: str
    """``<job id>:<slot in microseconds>``: the run's identity."""
    slot: str | None
    """When the run was due (ISO-8601)."""
    kind: str
    """``scheduled`` or ``manual`` (``run-now``)."""
    attempt: int
    missed: int
    """How many missed slots this run stands for."""
    scheduler: str
    """The name of the scheduler that sent it."""

    def __post_init__(self) -> None:
        dict.update(self, {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), tuple(self.values())

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("self.request.scheduler is read-only")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only


class Request:
    """What the caller sent. HTTP details are set when the call came over a channel."""

    __slots__ = (
        "channel",
        "headers",
        "input",
        "method",
        "path",
        "path_params",
        "payload",
        "pubsub",
        "query",
        "scheduler",
        "websocket",
    )

    def __init__(
        self,
        payload: Any = None,
        *,
        method: str | None = None,
        path: str | None = None,
        path_params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        channel: str | None = None,
        websocket: WebSocket | None = None,
    ) -> None:
        self.payload = payload
        """The body: parsed JSON, else ``str`` for text and ``bytes`` for anything else; ``None`` if empty."""
        self.input = InputView({})
        """The declared input fields, checked and converted, gathered from payload, path and query."""
        self.method = method
        self.path = path
        self.path_params: Mapping[str, str] = path_params or {}
        self.query: Mapping[str, str] = query or {}
        self.headers: Mapping[str, str] = headers or {}
        """HTTP headers, with lower-case names."""
        self.channel = channel
        """The name of the channel the call came through, or ``None`` for an invoke."""
        self.scheduler: SchedulerRun | None = None
        """Set when the scheduler started the call: ``job``, ``job_id``, ``run``, ``slot`` (the time it was due,
        ISO-8601), ``kind`` (``scheduled`` or ``manual``), ``attempt``, ``missed``, ``scheduler``."""
        self.websocket = websocket
        """The WebSocket connection the call came through (``self.websocket`` of the service), else ``None``."""
        self.pubsub: PubSubMessage | None = None
        """Set when a push subscription delivers a message: its id, topic, subscription, headers, attempt..."""


class Response:
    """What the service answers. ``payload`` of ``dict`` or ``list`` becomes JSON, ``str`` text, ``bytes`` binary."""

    __slots__ = ("content_type", "headers", "payload", "status")

    def __init__(self) -> None:
        self.payload: Any = None
        self.status: int | None = None
        """The HTTP status; when left ``None`` it is 200, or 204 if there is no payload."""
        self.headers: dict[str, str] = {}
        self.content_type: str | None = None


class Service:
    """Base class of every service. Subclass it and define ``handle()``."""

    name: ClassVar[str | None] = None
    """The service's name; when not set, derived from module and class (see ``splice.server.core.naming``)."""
    abstract: ClassVar[bool] = False
    """Set ``abstract = True`` on a base class that is not itself a service."""
    Input: ClassVar[type | None] = None
    Output: ClassVar[type | None] = None
    timeout: ClassVar[float | None] = None
    """Seconds a call of this service may take before its caller gets 504 ``timeout``; ``None``: the cluster's
    ``[calls] timeout`` (60 s unless cluster.toml says otherwise). An ``async def`` service is cancelled then; a
    plain ``def`` one cannot be stopped: its thread runs on (counted busy, its result dropped) until it returns."""

    request: Request
    response: Response
    cid: str
    """The correlation id of this call; every log line of the call carries it."""
    service_name: str
    server: str
    """The name of the server running this call (``""`` under ``splice.testing``)."""
    _invoker: Invoker
    _chain: tuple[str, ...]
    _logger: logging.LoggerAdapter[logging.Logger] | None = None
    _out: Out | None = None

    def handle(self) -> Awaitable[None] | None:
        """Do the work: read ``self.request``, set ``self.response``. May be ``async def``."""
        raise NotImplementedError

    def before_handle(self) -> Awaitable[None] | None:
        """Called before ``handle()``, after input was checked."""

    def after_handle(self) -> Awaitable[None] | None:
        """Called after ``handle()`` returned without raising."""

    @property
    def logger(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry this call's cid."""
        if self._logger is None:
            base = logging.getLogger(f"splice.service.{self.service_name}")
            self._logger = logging.LoggerAdapter(base, {"cid": self.cid})
        return self._logger

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Call another service and return its response payload. For ``def handle``; raises ``ServiceFailed``.

        Inside ``async def handle`` use ``await self.ainvoke(...)`` instead: this call blocks.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._invoker.invoke_blocking(name, payload, parent=self)
        raise RuntimeError(f"self.invoke({name!r}) blocks: inside 'async def handle' use 'await self.ainvoke(...)'")

    async def ainvoke(self, name: str, payload: Any = None) -> Any:
        """Call another service and return its response payload. For ``async def handle``; raises ``ServiceFailed``."""
        return await self._invoker.invoke_nested(name, payload, parent=self)

    def invoke_async(self, name: str, payload: Any = None) -> str:
        """Start another service in the background and return its cid at once."""
        return self._invoker.spawn(name, payload, parent=self)

    @property
    def out(self) -> Out:
        """Outgoing connections by kind and name: ``self.out.rest["billing"].get("/invoices")``.

        In ``async def handle`` each gives the kind's async client (``await self.out.rest["billing"].get(...)``).
        An unknown name raises ``UnknownConnection`` naming the known ones. See ``splice.server.core.outgoing``.
        """
        if self._out is None:
            self._out = Out(self._invoker.connections)
        return self._out

    @property
    def websocket(self) -> WebSocket | None:
        """The WebSocket connection this call came through (``None`` for a call that came otherwise, a nested
        one included): ``.id``, ``.channel``, ``.send(data)`` / ``await .asend(data)``, ``.close()``."""
        return self.request.websocket

    @property
    def websockets(self) -> Hub:
        """This server's open WebSocket connections: ``.connected()``, ``.send(id, data)`` /
        ``await .asend(id, data)``, ``.broadcast(channel, data)`` / ``await .abroadcast(channel, data)``.

        Per server: a client is connected to one server of the cluster. See ``splice.server.core.websockets``."""
        return self._invoker.websockets

    def publish(
        self,
        topic: str,
        data: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        priority: int = 0,
        expiry: float | None = None,
        key: str | None = None,
    ) -> PublishResult:
        """Publish ``data`` (JSON-able, or ``bytes``) to ``topic``; for ``def handle`` (it blocks until stored).

        ``expiry``: seconds the message lives; ``key``: an idempotency key (a repeat within the topic's window is
        not enqueued again); ``priority``: higher first. Inside ``async def handle`` use ``await self.apublish``.
        See ``splice.server.core.pubsub``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            import anyio.from_thread  # here: ``splice.server`` itself imports with nothing else installed

            return anyio.from_thread.run(
                functools.partial(
                    self.apublish, topic, data, headers=headers, priority=priority, expiry=expiry, key=key
                )
            )
        raise RuntimeError(f"self.publish({topic!r}) blocks: inside 'async def handle' use 'await self.apublish(...)'")

    async def apublish(
        self,
        topic: str,
        data: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        priority: int = 0,
        expiry: float | None = None,
        key: str | None = None,
    ) -> PublishResult:
        """Publish ``data`` to ``topic``; returns once a persistent message is stored for every subscription."""
        return await self._invoker.pubsub.publish(
            topic,
            data,
            headers=headers,
            priority=priority,
            expiry=expiry,
            key=key,
            publisher=f"service:{self.service_name}",
            cid=self.cid,
        )

    @property
    def cache(self) -> Caches:
        """Named caches, kept in step across the cluster: ``self.cache["default"].get(key)`` / ``.set(key, value,
        expiry=60)``; async twins ``aget``, ``aset``... See ``splice.server.core.cache``."""
        return self._invoker.caches

    @property
    def schedule(self) -> Schedule:
        """Create, change and cancel jobs: ``self.schedule.create("cleanup-7", "accounts.cleanup", in_=1800)``.

        See ``splice.server.core.schedule``; inside ``async def handle`` use ``await self.schedule.acreate(...)``.
        """
        return Schedule(self._invoker.jobs, f"service:{self.service_name}")


__all__ = ["InputView", "Request", "Response", "SchedulerRun", "Service", "current_cid"]
