"""Run services and the services they invoke in-process, without a server: for users' unit tests.

::

    def test_create_order(splice_services):
        splice_services.load("billing/orders.py")            # or .add(CreateOrder, ...)
        splice_services.stub("crm.get-customer", {"name": "Ada"})
        assert splice_services.invoke("billing.orders.create-order", {"customer_id": 1}) == {"order_id": 1}
        assert splice_services.calls[-1].name == "crm.get-customer"

    def test_overdue_invoices(splice_services):
        splice_services.load("billing/invoices.py")
        splice_services.stub_rest("billing", {"GET /invoices?status=overdue": {"json": [{"id": 7}]}})
        assert splice_services.invoke("billing.invoices.overdue") == [7]
        assert splice_services.requests("billing")[0].headers["X-Splice-CID"]

Outgoing connections (``self.out``) are what the test defines: ``connect`` (a real connection to a test double),
``stub_rest`` (recorded answers) or ``stub_connection`` (any object); see ``splice.testing.connections``.
Caches (``self.cache``) are real memory caches of the harness's own, as on a one-server cluster: ``default``, and
those ``define_cache`` adds (a ``redis`` one through a connection the test ``connect``-ed); ``caches["default"]``
reads and writes them from the test.
Services run exactly as on a server (same input checks, by the service's ``Input``, a plain class or a pydantic
model; hooks; threads for plain ``def handle``), so what passes here behaves the same once deployed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from splice.server.cache import CacheSpec, ServerCaches
from splice.server.core.invoker import Invoker
from splice.server.core.naming import module_name
from splice.server.core.service import Request, Response, Service
from splice.server.core.store import ServiceInfo, ServiceStore, describe, find_services

from .connections import Answer, Handler, HarnessConnections


@dataclass(frozen=True)
class Call:
    """One service call the harness saw: which service, with what payload, from which service (if any)."""

    name: str
    payload: Any
    caller: str | None


class _RecordingInvoker(Invoker):
    def __init__(self, store: ServiceStore, calls: list[Call]) -> None:
        super().__init__(store)
        self._calls = calls

    async def call(
        self,
        name: str,
        payload: Any = None,
        *,
        request: Request | None = None,
        cid: str | None = None,
        chain: tuple[str, ...] = (),
    ) -> Response:
        self._calls.append(
            Call(name, request.payload if request is not None else payload, chain[-1] if chain else None)
        )
        return await super().call(name, payload, request=request, cid=cid, chain=chain)


@dataclass
class _Definitions:
    """The caches a test defined (``ServiceHarness.define_cache``)."""

    caches: dict[str, CacheSpec] = field(default_factory=dict)


class ServiceHarness:
    """A service store and invoker of its own; nothing is shared with other tests."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or Path.cwd()).resolve()
        self.store = ServiceStore()
        self.calls: list[Call] = []
        """Every call made through the harness, nested ones included, in order."""
        self.invoker = _RecordingInvoker(self.store, self.calls)
        self.connections = HarnessConnections()
        """What ``self.out`` of the services gives: what ``connect``, ``stub_rest`` and ``stub_connection`` defined."""
        self.invoker.connections = self.connections
        self.caches = ServerCaches(_Definitions(), None, self.connections, "test")
        """What ``self.cache`` of the services gives: ``default`` and what ``define_cache`` added, in memory."""
        self.invoker.caches = self.caches

    # -- registering services --------------------------------------------------------------------

    def add(self, *items: type[Service] | ModuleType) -> list[str]:
        """Register service classes, or every service of modules; returns the names registered."""
        infos: list[ServiceInfo] = []
        for item in items:
            if isinstance(item, ModuleType):
                classes, problems = find_services(item.__name__, vars(item))
                if problems:
                    raise ValueError(f"{item.__name__}: {'; '.join(problems)}")
                infos += [self._describe(cls) for cls in classes]
            elif inspect.isclass(item) and issubclass(item, Service):
                infos.append(self._describe(item))
            else:
                raise TypeError(f"add() takes Service subclasses or modules, not {item!r}")
        self.store.swap(set(), infos)
        return [info.name for info in infos]

    def _describe(self, cls: type[Service]) -> ServiceInfo:
        module = sys.modules.get(cls.__module__)
        namespace = vars(module) if module is not None else {}
        return describe(cls, cls.__module__, getattr(module, "__file__", "") or "", 0, namespace)

    def load(self, path: str | Path) -> list[str]:
        """Import a file of the project (relative to the root, as it would be deployed) and register its services."""
        relative = Path(path)
        if relative.is_absolute():
            try:
                relative = relative.resolve().relative_to(self.root)
            except ValueError:
                raise ValueError(f"{path} is not inside the project root {self.root}") from None
        name = module_name(relative.as_posix())
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        return self.add(importlib.import_module(name))

    def stub(self, name: str, answer: Any = None, *, raises: BaseException | None = None) -> None:
        """Stand in for service ``name``: answer ``answer`` (``answer(payload)`` if callable) or raise ``raises``."""

        def handle(service: Service) -> None:
            if raises is not None:
                raise raises
            service.response.payload = answer(service.request.payload) if callable(answer) else answer

        stub_cls = type(f"Stub_{name}", (Service,), {"name": name, "handle": handle, "__module__": __name__})
        self.store.swap(set(), [describe(stub_cls, __name__, "(stub)", 0, {})])

    def names(self) -> list[str]:
        return self.store.names()

    # -- outgoing connections ----------------------------------------------------------------------

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
        """Make ``self.out.<kind>[name]`` a real connection to ``address`` (a test double, a SQLite file in
        ``tmp_path``, the test Redis...), opened by the code a server uses, with the kind's ``options``."""
        self.connections.connect(
            name, kind=kind, address=address, username=username, password=password, key=key, token=token, **options
        )

    def stub_rest(
        self,
        name: str,
        answers: Mapping[str, Answer] | Handler,
        *,
        address: str = "http://stub.invalid",
        username: str | None = None,
        password: str | None = None,
        key: str | None = None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        """Make ``self.out.rest[name]`` a real httpx client whose requests ``answers`` answers, without a network:
        ``{"GET /invoices/7": {"status": 200, "json": {...}}}`` or a function of the ``httpx.Request``."""
        self.connections.stub_rest(
            name,
            answers,
            address=address,
            username=username,
            password=password,
            key=key,
            token=token,
            **options,
        )

    def stub_connection(self, name: str, *, kind: str, client: Any) -> None:
        """Make ``self.out.<kind>[name]`` give ``client``, any object of the test's choosing (a fake Redis...)."""
        self.connections.stub_connection(name, kind=kind, client=client)

    def requests(self, name: str) -> list[httpx.Request]:
        """The requests services sent through the stubbed REST connection ``name``, in order."""
        return self.connections.requests(name)

    # -- caches ----------------------------------------------------------------------------------

    def define_cache(self, name: str, **spec: Any) -> None:
        """Add (or change) the cache ``name`` with ``CacheSpec`` fields: ``max_entries``, ``max_bytes``, ``expiry``,
        ``max_value``; ``backend="redis", connection=...`` for one in the Redis of a connection ``connect``-ed."""
        definitions = self.caches.definitions
        definitions.caches = {**definitions.caches, name: CacheSpec.model_validate({"name": name, **spec})}
        self.caches.rebuild()

    # -- calling ---------------------------------------------------------------------------------

    async def acall(self, name: str, payload: Any = None, **http: Any) -> Response:
        """Run ``name``, waiting for the background calls it starts; ``http`` sets request details (method, query)."""
        request = Request(payload, **http) if http else None
        try:
            return await self.invoker.call(name, payload, request=request)
        finally:
            await self.invoker.drain()
            await self.connections.aclose()  # its async clients belong to this call's event loop

    async def ainvoke(self, name: str, payload: Any = None, **http: Any) -> Any:
        return (await self.acall(name, payload, **http)).payload

    def call(self, name: str, payload: Any = None, **http: Any) -> Response:
        """Like ``acall`` for plain (non-async) tests."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acall(name, payload, **http))
        raise RuntimeError("inside an async test use 'await splice_services.ainvoke(...)' or 'acall(...)'")

    def invoke(self, name: str, payload: Any = None, **http: Any) -> Any:
        """Run service ``name`` and return its response payload; raises ``ServiceFailed`` / ``InvalidInput``."""
        return self.call(name, payload, **http).payload

    def called(self, name: str) -> list[Call]:
        """The calls made to ``name``."""
        return [c for c in self.calls if c.name == name]

    def close(self) -> None:
        """Close the outgoing connections still open (the fixture does it at the end of each test)."""
        if not self.connections.opened():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.connections.aclose())
            return
        raise RuntimeError("inside an async test use 'await splice_services.aclose()'")

    async def aclose(self) -> None:
        await self.connections.aclose()
