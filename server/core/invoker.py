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
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable
from time import perf_counter, time
from typing import TYPE_CHECKING, Any

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
