"""Running a service: check input, instantiate, hooks, ``handle()``, check output.

The input is checked by the service's ``Input`` model (``splice.server.core.fields``) and reaches the service as
an ``InputView``; an ``Output`` model checks a ``dict`` answer (a pydantic Output also shapes it: its JSON
form is what the caller gets), and an answer that is a pydantic instance is turned into its JSON form.

``async def`` services run on the event loop; plain ``def`` services run in a worker thread of a bounded
pool (``WorkerPool``: ``[calls] threads``, at most ``[calls] queue`` calls waiting, beyond that ``Overloaded``),
so a blocking call in a service (an HTTP client, a database driver) never stalls the server, and services that
block for good cannot take it down. Every call has a timeout (``[calls] timeout``, or the service class's
``timeout``): past it the caller gets ``CallTimedOut``; an ``async def`` service is cancelled, a thread is
abandoned (it runs on, counted busy, and its result is dropped). Errors that escape user code become
``ServiceFailed`` naming the chain of services that led to them; this is the one place that catches everything
user code may raise.

While a debugger traces the process (``Invoker.own_loop``, set by ``splice.server.debug.Debugger``), an ``async
def`` service runs on an event loop of its own in a thread of the same pool, so a breakpoint paused in it holds
up only its own request, as in a plain ``def`` one: the server's loop goes on answering pings and other calls.
What such a service awaits that belongs to the server's loop (``self.ainvoke``, ``self.apublish``, the async
methods of ``self.cache``, ``self.out``, ``self.schedule``, ``self.websockets``, ``self.websocket``) is run on
the server's loop (``asyncio.run_coroutine_threadsafe``) through ``_OnLoop``, a proxy with the same API; when
the call times out or is cancelled, its own loop's task is cancelled, and with it what it awaits there. A call
not being debugged takes none of this: one attribute check.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, ClassVar, cast

import anyio
import anyio.from_thread

from .cache import Caches, NoCaches
from .context import current_cid, new_cid
from .errors import (
    CallTimedOut,
    HTTPError,
    InvalidInput,
    InvalidOutput,
    Overloaded,
    ServiceFailed,
    ServiceNotFound,
    SpliceError,
)
from .fields import is_model_instance
from .metrics import Metrics
from .outgoing import ConnectionSource, NoConnections
from .pubsub import NoPublisher, Publisher
from .service import InputView, Request, Response, Service
from .store import ServiceInfo, ServiceStore
from .websockets import Hub
from .workers import WorkerPool

if TYPE_CHECKING:
    from .schedule import JobBackend

logger = logging.getLogger(__name__)
_ERROR_MAX = 500
"""The longest error text the metrics keep of a failed call (a traceback is in the log, under its cid)."""


class Invoker:
    """Calls services by name from one ``ServiceStore``."""

    own_loop: ClassVar[bool] = False
    """Whether ``async def`` services run on an event loop of their own in a worker thread (so that a breakpoint
    paused in one holds up only its call): set for the whole process while a debugger traces it."""

    def __init__(
        self,
        store: ServiceStore,
        server: str = "",
        metrics: Metrics | None = None,
        *,
        timeout: float = 60.0,
        pool: WorkerPool | None = None,
    ) -> None:
        self.store = store
        self.server = server
        self.metrics = metrics or Metrics()
        """Every call's outcome and duration, recorded whatever the channel (``runtime.metrics``)."""
        self.timeout = timeout
        """Seconds a call may take (``[calls] timeout``) unless its service class sets ``timeout``."""
        self.pool = pool or WorkerPool()
        """The worker threads plain ``def`` services run in, and the queue in front of them."""
        self._background: set[asyncio.Task[Any]] = set()
        self.jobs: JobBackend | None = None
        """Where ``self.schedule`` of a service creates and changes jobs (``None``: no ODB, as under tests)."""
        self.connections: ConnectionSource = NoConnections()
        """Where ``self.out`` of a service takes its outgoing connections from."""
        self.websockets = Hub()
        """This server's open WebSocket connections (``self.websockets``); the HTTP edge adds and removes them."""
        self.pubsub: Publisher = NoPublisher()
        """Where ``self.publish`` of a service publishes (the server's broker)."""
        self.caches: Caches = NoCaches()
        """Where ``self.cache`` of a service finds its caches by name."""

    def lookup(self, name: str) -> ServiceInfo:
        info = self.store.get(name)
        if info is None:
            raise ServiceNotFound(name)
        return info

    async def call(
        self,
        name: str,
        payload: Any = None,
        *,
        request: Request | None = None,
        cid: str | None = None,
        chain: tuple[str, ...] = (),
    ) -> Response:
        """Run service ``name`` and return its response; raises ``SpliceError`` subclasses only.

        Every call of a deployed service is counted in ``self.metrics`` (here, on the event loop, after the call:
        the recorder needs no lock even for services that run in worker threads)."""
        info = self.lookup(name)
        if request is None:
            request = Request(payload)
        cid = cid or new_cid()
        started = perf_counter()
        try:
            response = await self._run_within(info, request, cid, chain)
        except Exception as exc:
            ok = isinstance(exc, HTTPError) and exc.status < 500  # a service's deliberate 4xx is an answer
            error = None if ok else f"{type(exc).__name__}: {exc}"[:_ERROR_MAX]
            self.metrics.record(info.name, perf_counter() - started, time(), cid, ok, request.channel, error)
            raise
        status = response.status
        ok = status is None or status < 500
        self.metrics.record(
            info.name, perf_counter() - started, time(), cid, ok, request.channel, None if ok else f"HTTP {status}"
        )
        return response

    def timeout_of(self, info: ServiceInfo) -> tuple[float, str]:
        """The seconds a call of ``info`` may take, and where that figure comes from (for the caller's message)."""
        own = getattr(info.cls, "timeout", None)
        if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
            return float(own), f"{info.cls.__qualname__}.timeout"
        return self.timeout, "[calls] timeout in cluster.toml; a service class may set its own timeout"

    async def _run_within(self, info: ServiceInfo, request: Request, cid: str, chain: tuple[str, ...]) -> Response:
        seconds, source = self.timeout_of(info)
        try:
            async with asyncio.timeout(seconds):
                return await self._run(info, request, cid, chain)
        except TimeoutError:
            what = "cancelled" if info.is_async else "abandoned: its thread runs on and its result will be dropped"
            logger.error(
                "service %s did not answer within %g s (cid %s): %s", info.name, seconds, cid, what, extra={"cid": cid}
            )
            raise CallTimedOut(info.name, seconds, source, cid) from None

    async def _run(self, info: ServiceInfo, request: Request, cid: str, chain: tuple[str, ...]) -> Response:
        name = info.name
        self._check_input(info, request)
        token = current_cid.set(cid)
        try:
            try:
                service = self._instantiate(info, request, cid, chain)
            except Exception as exc:  # the service's own __init__ raised
                logger.exception("service %s failed", name)
                raise ServiceFailed((*chain, info.name), cid, exc) from exc
            try:
                if info.is_async:
                    if self.own_loop:
                        await self._run_on_own_loop(service)
                    else:
                        await _run_hooks_async(service)
                else:
                    await self.pool.run(functools.partial(_run_hooks_blocking, service), name, cid)
            except (HTTPError, ServiceFailed, Overloaded):
                raise
            except Exception as exc:
                logger.exception("service %s failed", name)
                raise ServiceFailed(service._chain, cid, exc) from exc
            finally:
                if service._out is not None:
                    service._out.release()
            self._check_output(info, service.response)
            return service.response
        finally:
            current_cid.reset(token)

    async def _run_on_own_loop(self, service: Service) -> None:
        """Run ``service``'s hooks on a loop of their own in a worker thread; what they await of the server's loop
        hops there. Cancelling this (the call's timeout) cancels the service's task on its own loop."""
        home = asyncio.get_running_loop()
        service._invoker = cast("Invoker", _OnOwnLoop(self, home))
        if service.request.websocket is not None:
            service.request = copy.copy(service.request)  # the caller's request keeps its own websocket
            service.request.websocket = cast(Any, _OnLoop(service.request.websocket, home))
        call = _OwnLoopCall()
        try:
            await self.pool.run(functools.partial(call.run, service), service.service_name, service.cid)
        except asyncio.CancelledError:
            call.cancel()
            raise

    def _instantiate(self, info: ServiceInfo, request: Request, cid: str, chain: tuple[str, ...]) -> Service:
        service = info.cls()
        service.request = request
        service.response = Response()
        service.cid = cid
        service.service_name = info.name
        service.server = self.server
        service._invoker = self
        service._chain = (*chain, info.name)
        return service

    @staticmethod
    def _check_input(info: ServiceInfo, request: Request) -> None:
        if info.input is None:
            request.input = InputView(request.payload if isinstance(request.payload, dict) else {})
            return
        textual: dict[str, str] = {}
        where: dict[str, str] = {}
        for source, values in (("query", request.query), ("path", request.path_params)):
            for key, value in values.items():
                textual[key] = value
                where[key] = source
        instance, problems = info.input.check(request.payload, textual, where)
        if instance is None:
            raise InvalidInput(info.name, problems)
        request.input = InputView(info.input.values(instance), instance, info.input.keys)

    @staticmethod
    def _check_output(info: ServiceInfo, response: Response) -> None:
        if isinstance(response.payload, InputView) and response.payload.model_instance is not None:
            # the checked input echoed back: its model's JSON form (its values may be datetimes, nested models)
            response.payload = response.payload.model_instance
        if is_model_instance(response.payload):
            response.payload = response.payload.model_dump(mode="json", by_alias=True)
        if info.output is None or not isinstance(response.payload, dict):
            return
        instance, problems = info.output.check(response.payload)
        if instance is None:
            raise InvalidOutput(info.name, problems)
        if not info.output.plain:
            response.payload = instance.model_dump(mode="json", by_alias=True)

    async def invoke_nested(self, name: str, payload: Any, *, parent: Service) -> Any:
        try:
            response = await self.call(name, payload, cid=parent.cid, chain=parent._chain)
        except ServiceFailed:
            raise
        except SpliceError as exc:
            raise ServiceFailed((*parent._chain, name), parent.cid, exc) from exc
        return response.payload

    def invoke_blocking(self, name: str, payload: Any, *, parent: Service) -> Any:
        return anyio.from_thread.run(functools.partial(self.invoke_nested, name, payload, parent=parent))

    def spawn(self, name: str, payload: Any, *, parent: Service | None = None) -> str:
        """Start ``name`` in the background; returns its cid. Callable from the loop or a worker thread."""
        self.lookup(name)
        cid = new_cid()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            anyio.from_thread.run_sync(self._start_task, name, payload, cid)
        else:
            self._start_task(name, payload, cid)
        return cid

    def _start_task(self, name: str, payload: Any, cid: str) -> None:
        self.track(asyncio.get_running_loop().create_task(self._background_call(name, payload, cid)))

    def track(self, task: asyncio.Task[Any]) -> None:
        """Keep ``task`` (a call under way that nobody awaits) alive until it ends; shutdown waits for it."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _background_call(self, name: str, payload: Any, cid: str) -> None:
        try:
            await self.call(name, payload, cid=cid)
        except SpliceError as exc:
            logger.error("background call of %s (cid %s) failed: %s", name, cid, exc, extra={"cid": cid})

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for background calls to finish (at shutdown)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout)


async def _maybe_await(result: Awaitable[None] | None) -> None:
    if inspect.isawaitable(result):
        await result


async def _run_hooks_async(service: Service) -> None:
    await _maybe_await(service.before_handle())
    await _maybe_await(service.handle())
    await _maybe_await(service.after_handle())


def _run_hooks_blocking(service: Service) -> None:
    for hook in (service.before_handle, service.handle, service.after_handle):
        result = hook()
        if inspect.isawaitable(result):
            anyio.from_thread.run(_maybe_await, result)


class _OwnLoopCall:
    """One ``async def`` service call on a loop of its own (in a worker thread), cancellable from the server's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def run(self, service: Service) -> None:
        """In the worker thread (its context is a copy of the call's: cid, actor)."""
        asyncio.run(self._main(service))

    async def _main(self, service: Service) -> None:
        with self._lock:
            if self._cancelled:
                raise asyncio.CancelledError
            self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        await _run_hooks_async(service)

    def cancel(self) -> None:
        """From the server's loop: cancel the service's task (at once if it did not start)."""
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                with contextlib.suppress(RuntimeError):  # its loop is closed: the call ended meanwhile
                    self._loop.call_soon_threadsafe(self._task.cancel)


class _OnOwnLoop:
    """What a service running on its own loop sees as ``self._invoker``: every part that belongs to the server's
    loop is reached through ``_OnLoop``, nested and background calls start on the server's loop."""

    def __init__(self, invoker: Invoker, home: asyncio.AbstractEventLoop) -> None:
        self._real = invoker
        self._home = home
        self.server = invoker.server
        self.connections = _HomeConnections(invoker.connections, home)
        self.pubsub = _OnLoop(invoker.pubsub, home)
        self.caches = _OnLoop(invoker.caches, home)
        self.websockets = _OnLoop(invoker.websockets, home)
        self.jobs = None if invoker.jobs is None else _OnLoop(invoker.jobs, home)

    async def invoke_nested(self, name: str, payload: Any, *, parent: Service) -> Any:
        return await _hop(self._home, self._real.invoke_nested(name, payload, parent=parent))

    def invoke_blocking(self, name: str, payload: Any, *, parent: Service) -> Any:
        return self._real.invoke_blocking(name, payload, parent=parent)

    def spawn(self, name: str, payload: Any, *, parent: Service | None = None) -> str:
        self._real.lookup(name)
        cid = new_cid()
        self._home.call_soon_threadsafe(self._real._start_task, name, payload, cid)
        return cid


class _HomeConnections:
    """``self.out``'s source for a service on its own loop: async clients come wrapped in ``_OnLoop``."""

    def __init__(self, source: ConnectionSource, home: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._home = home

    def lease(self, kind: str, name: str, blocking: bool) -> tuple[Any, Callable[[], None]]:
        client, release = self._source.lease(kind, name, blocking)
        return (client if blocking else _OnLoop(client, self._home)), release

    def names(self, kind: str) -> list[str]:
        return self._source.names(kind)


_PLAIN = (str, bytes, bytearray, int, float, bool, type(None), dict, list, tuple, set, frozenset, type)


_LIVE: dict[type, bool] = {}


def _is_live(cls: type) -> bool:
    """Whether objects of ``cls`` have async methods (their I/O belongs to the loop that made them)."""
    live = _LIVE.get(cls)
    if live is None:
        if issubclass(cls, _PLAIN):
            live = False
        elif any(hasattr(cls, name) for name in ("__aenter__", "__aiter__", "__await__")):
            live = True
        else:
            public = (inspect.getattr_static(cls, name, None) for name in dir(cls) if name[:1] != "_")
            live = any(inspect.iscoroutinefunction(attribute) for attribute in public)
        _LIVE[cls] = live
    return live


def _wrap(value: Any, home: asyncio.AbstractEventLoop) -> Any:
    return _OnLoop(value, home) if _is_live(type(value)) else value


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _hop(home: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> Any:
    """Await ``awaitable`` on the server's loop ``home`` from a service's own loop (cancelling this cancels it)."""
    coro = awaitable if inspect.iscoroutine(awaitable) else _awaited(awaitable)
    future = asyncio.run_coroutine_threadsafe(coro, home)
    return _wrap(await asyncio.wrap_future(future), home)


def _call(home: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = function(*args, **kwargs)
    if inspect.iscoroutine(result):
        return _hop(home, result)
    if _is_live(type(result)):
        return _OnLoop(result, home)
    if inspect.isawaitable(result):
        return _hop(home, result)
    return result


class _OnLoop:
    """An object of the server's loop (a client, a cache, the broker), used from a service's own loop: the same
    attributes and methods, and whatever they give to await is awaited on the server's loop."""

    __slots__ = ("_home", "_target")

    def __init__(self, target: Any, home: asyncio.AbstractEventLoop) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_home", home)

    def __getattr__(self, name: str) -> Any:
        if name in _OnLoop.__slots__:  # not set yet (a copy being made): no recursion through self._target
            raise AttributeError(name)
        value = getattr(self._target, name)
        if callable(value) and not isinstance(value, type):
            return functools.wraps(value)(functools.partial(_call, self._home, value))
        return _wrap(value, self._home)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OnLoop.__slots__:
            object.__setattr__(self, name, value)
        else:
            setattr(self._target, name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _call(self._home, self._target, *args, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        return _wrap(self._target[key], self._home)

    def __contains__(self, key: Any) -> bool:
        return key in self._target

    def __len__(self) -> int:
        return len(self._target)

    def __bool__(self) -> bool:
        return bool(self._target)

    def __iter__(self) -> Any:
        return iter(self._target)

    def __repr__(self) -> str:
        return repr(self._target)

    def __await__(self) -> Any:
        return _hop(self._home, self._target).__await__()

    async def __aenter__(self) -> Any:
        return await _hop(self._home, self._target.__aenter__())

    async def __aexit__(self, *exc: Any) -> Any:
        return await _hop(self._home, self._target.__aexit__(*exc))

    def __aiter__(self) -> Any:
        return _OnLoop(self._target.__aiter__(), self._home)

    async def __anext__(self) -> Any:
        return await _hop(self._home, self._target.__anext__())
