"""``self.schedule``: a running service creates, changes and cancels scheduled jobs::

    class CreateAccount(Service):
        def handle(self) -> None:
            account = create(self.request.payload)
            self.schedule.create(f"cleanup-{account.id}", "accounts.cleanup", in_=1800, payload={"id": account.id})

    class Report(Service):
        async def handle(self) -> None:
            await self.schedule.acreate("nightly", "reports.build", cron="0 2 * * *", timezone="Europe/Berlin")

Plain methods are for ``def handle`` (they wait for the ODB from the worker thread); inside ``async def
handle`` use the ``a``-prefixed ones. The scheduler sees every change within a second.

The jobs live behind a ``JobBackend`` (the server's jobs manager, wired in at start up): the core knows only
this protocol of it, and hands services each job in its JSON form, as the admin API shows it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from .errors import NotFound

T = TypeVar("T")
_NO_ODB = "self.schedule needs a running Splice server (with an ODB); under splice.testing, stub the call instead"


class ScheduledJob(Protocol):
    """A stored job, as far as ``self.schedule`` needs it."""

    def as_json(self) -> dict[str, Any]:
        """The job as the admin API shows it (``id``, ``name``, ``service``, ``trigger``, ``schedule``...)."""
        ...


class JobBackend(Protocol):
    """Where jobs are created, changed and read: a job definition in, stored jobs out; raises ``NotFound``."""

    async def create(self, body: Mapping[str, Any], origin: str, replace: bool = False) -> ScheduledJob: ...

    async def change(self, name: str, body: Mapping[str, Any]) -> ScheduledJob: ...

    async def delete(self, name: str) -> None: ...

    async def find(self, name: str) -> ScheduledJob | None: ...

    async def all(self) -> Sequence[ScheduledJob]: ...


def _seconds(value: float | timedelta | Mapping[str, float]) -> Any:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return dict(value) if isinstance(value, Mapping) else value


def _moment(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value


def job_body(name: str, service: str, **fields: Any) -> dict[str, Any]:
    """A job definition (as the admin API takes it) from keyword arguments; ``in_`` stands for ``in``."""
    body: dict[str, Any] = {"name": name, "service": service}
    for key, value in fields.items():
        if value is None:
            continue
        if key == "in_":
            body["in"] = _seconds(value)
        elif key == "interval":
            body["interval"] = _seconds(value)
        elif key in ("at", "start"):
            body[key] = _moment(value)
        else:
            body[key] = value
    return body


class Schedule:
    """Jobs, as one service call sees them; ``origin`` (``service:<name>``) is recorded on what it creates."""

    def __init__(self, jobs: JobBackend | None, origin: str) -> None:
        self._jobs = jobs
        self.origin = origin

    def _backend(self) -> JobBackend:
        if self._jobs is None:
            raise RuntimeError(_NO_ODB)
        return self._jobs

    def _blocking(self, name: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            import anyio.from_thread  # here: ``splice.server`` itself imports with nothing else installed

            return anyio.from_thread.run(call)
        raise RuntimeError(
            f"self.schedule.{name}() blocks: inside 'async def handle' use 'await self.schedule.a{name}()'"
        )

    async def acreate(
        self,
        name: str,
        service: str,
        *,
        payload: Any = None,
        interval: float | timedelta | Mapping[str, float] | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        at: datetime | str | None = None,
        in_: float | timedelta | None = None,
        start: datetime | str | None = None,
        repeats: int | None = None,
        misfire: str | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        replace: bool = True,
    ) -> dict[str, Any]:
        """Create job ``name`` (or, with ``replace``, the default, change the job of that name); answers the job.

        One trigger: ``interval`` (seconds, a ``timedelta`` or ``{"minutes": 5}``), ``cron`` (with
        ``timezone``), ``at`` (a moment) or ``in_`` (seconds from now).
        """
        body = job_body(
            name,
            service,
            payload=payload,
            interval=interval,
            cron=cron,
            timezone=timezone,
            at=at,
            in_=in_,
            start=start,
            repeats=repeats,
            misfire=misfire,
            retries=retries,
            backoff=backoff,
        )
        return (await self._backend().create(body, self.origin, replace=replace)).as_json()

    def create(self, name: str, service: str, **fields: Any) -> dict[str, Any]:
        """``acreate`` for ``def handle``."""
        return self._blocking("create", functools.partial(self.acreate, name, service, **fields))

    async def achange(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change the fields given of job ``name`` (same keywords as ``create``); raises ``NotFound``."""
        service = fields.pop("service", None)
        body = job_body(name, service or "", **fields)
        if service is None:
            del body["service"]
        return (await self._backend().change(name, body)).as_json()

    def change(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._blocking("change", functools.partial(self.achange, name, **fields))

    async def acancel(self, name: str) -> bool:
        """Delete job ``name`` (its future runs and its history); ``False`` if there was none."""
        try:
            await self._backend().delete(name)
        except NotFound:
            return False
        return True

    def cancel(self, name: str) -> bool:
        return self._blocking("cancel", functools.partial(self.acancel, name))

    async def aget(self, name: str) -> dict[str, Any] | None:
        """Job ``name`` as the admin API shows it, or ``None``."""
        job = await self._backend().find(name)
        return None if job is None else job.as_json()

    def get(self, name: str) -> dict[str, Any] | None:
        return self._blocking("get", functools.partial(self.aget, name))
