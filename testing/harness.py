"""Run services and the services they invoke in-process, without a server: for users' unit tests.

::

    def test_create_order(splice_services):
        splice_services.load("billing/orders.py")            # or .add(CreateOrder, ...)
        splice_services.stub("crm.get-customer", {"name": "Ada"})
        assert splice_services.invoke("billing.orders.create-order", {"customer_id": 1}) == {"order_id": 1}
        assert splice_services.calls[-1].name == "crm.get-customer"

Services run exactly as on a server (same input checks, by the service's ``Input``, a plain class or a pydantic
model; hooks; threads for plain ``def handle``), so what passes here behaves the same once deployed.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from splice.server.core.invoker import Invoker
from splice.server.core.naming import module_name
from splice.server.core.service import Request, Response, Service
from splice.server.core.store import ServiceInfo, ServiceStore, describe, find_services


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


class ServiceHarness:
    """A service store and invoker of its own; nothing is shared with other tests."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or Path.cwd()).resolve()
        self.store = ServiceStore()
        self.calls: list[Call] = []
        """Every call made through the harness, nested ones included, in order."""
        self.invoker = _RecordingInvoker(self.store, self.calls)

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

    # -- calling ---------------------------------------------------------------------------------

    async def acall(self, name: str, payload: Any = None, **http: Any) -> Response:
        """Run ``name``, waiting for the background calls it starts; ``http`` sets request details (method, query)."""
        request = Request(payload, **http) if http else None
        try:
            return await self.invoker.call(name, payload, request=request)
        finally:
            await self.invoker.drain()

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
