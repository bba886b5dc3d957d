"""What a REST connection's httpx clients send through: the caller's cid, one log line per call, retries.

Each client's transport is ``CallLog(RetryTransport(HTTPTransport))`` (or their async twins):

- ``CallLog`` stamps ``X-Splice-CID`` with the calling service's cid (read when the request is sent, so a
  ``def handle`` in a worker thread sends its own) and logs one line per call through ``log_call``: method,
  URL without its query string (which may hold secrets), status, duration, and the retries it took.
- ``RetryTransport`` is httpx-retries' (a small, typed, well-kept library for exactly this); ``Retries``
  is its policy set the way ``RestSpec`` describes it: idempotent methods only, on connect errors, timeouts
  and dropped connections and on 502/503/504, waiting ``backoff * 2**n`` or the answer's ``Retry-After``,
  at most 30 s either way.

The logged duration runs until the answer's headers came (the body is read after the transport returns).
"""

from __future__ import annotations

import copy
import ssl
import time

import httpx
from httpx_retries import Retry, RetryTransport

from ..core import tracing
from ..core.context import current_cid
from .registry import log_call

CID_HEADER = "X-Splice-CID"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = (502, 503, 504)
RETRY_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,  # a kept-alive connection the server closed as we reused it
)
"""Not PoolTimeout: waiting longer for one of our own busy connections does not help."""
MAX_WAIT = 30.0


class Retries(Retry):
    """httpx-retries' policy with the first wait ``backoff`` (not ``2 * backoff``) and a record of each retry.

    A request gets its own copy (``for_request``) whose ``reasons`` list the retries made, for the log line;
    ``increment`` hands the same list on to the next attempt's policy.
    """

    reasons: list[str]

    def backoff_strategy(self) -> float:
        if self.backoff_factor == 0:
            return 0.0
        return float(min(self.backoff_factor * 2 ** max(self.attempts_made - 1, 0), self.max_backoff_wait))

    def for_request(self) -> Retries:
        fresh = copy.copy(self)
        fresh.reasons = []
        return fresh

    def increment(self) -> Retries:
        new = super().increment()
        assert isinstance(new, Retries)
        new.reasons = getattr(self, "reasons", [])
        return new

    def _note(self, outcome: httpx.Response | Exception) -> None:
        if hasattr(self, "reasons"):
            self.reasons.append(
                str(outcome.status_code) if isinstance(outcome, httpx.Response) else type(outcome).__name__
            )

    def sleep(self, response: httpx.Response | Exception) -> None:
        self._note(response)
        super().sleep(response)

    async def asleep(self, response: httpx.Response | Exception) -> None:
        self._note(response)
        await super().asleep(response)


def retries(count: int, backoff: float) -> Retries:
    """The policy of a connection: ``count`` retries of idempotent methods, ``backoff`` s before the first."""
    return Retries(
        total=count,
        allowed_methods=IDEMPOTENT,
        status_forcelist=RETRY_STATUSES,
        retry_on_exceptions=RETRY_ERRORS,
        backoff_factor=backoff,
        backoff_jitter=0.0,
        respect_retry_after_header=True,
        max_backoff_wait=MAX_WAIT,
    )


NO_RETRY = retries(0, 0.0)
"""For one request that must not be retried: ``extensions={"retry": NO_RETRY}`` (the ping)."""


def loggable(url: httpx.URL) -> str:
    """``scheme://host:port/path``: no user info, no query string (API keys travel there too)."""
    return f"{url.scheme}://{url.netloc.decode('ascii')}{url.path}"


class _Call:
    """One request's bookkeeping, shared by the sync and async transports."""

    __slots__ = ("policy", "started", "what")

    def __init__(self, request: httpx.Request, policy: Retries) -> None:
        cid = current_cid.get()
        if cid != "-" and CID_HEADER not in request.headers:
            request.headers[CID_HEADER] = cid
        if "traceparent" not in request.headers:  # the next system joins the caller's trace (W3C trace context)
            request.headers.update(tracing.outgoing_headers())
        self.policy: Retries | None = None
        if request.method in IDEMPOTENT and "retry" not in request.extensions:
            self.policy = policy.for_request()
            request.extensions["retry"] = self.policy
        self.what = f"{request.method} {loggable(request.url)}"
        self.started = time.perf_counter()

    def _retried(self) -> str:
        reasons = self.policy.reasons if self.policy is not None else []
        if not reasons:
            return ""
        return f" after {len(reasons)} {'retry' if len(reasons) == 1 else 'retries'} ({', '.join(reasons)})"

    def done(self, name: str, response: httpx.Response) -> None:
        log_call("rest", name, f"{self.what} -> {response.status_code}{self._retried()}", self.started)

    def failed(self, name: str, error: Exception) -> None:
        log_call("rest", name, f"{self.what}{self._retried()}", self.started, error)


class CallLog(httpx.BaseTransport):
    """The blocking client's outermost transport: cid header, retries, one log line."""

    def __init__(self, name: str, inner: httpx.BaseTransport, policy: Retries) -> None:
        self._name = name
        self._inner = inner
        self._policy = policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request, self._policy)
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            call.failed(self._name, exc)
            raise
        call.done(self._name, response)
        return response

    def close(self) -> None:
        self._inner.close()


class AsyncCallLog(httpx.AsyncBaseTransport):
    """The async client's outermost transport: cid header, retries, one log line."""

    def __init__(self, name: str, inner: httpx.AsyncBaseTransport, policy: Retries) -> None:
        self._name = name
        self._inner = inner
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _Call(request, self._policy)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            call.failed(self._name, exc)
            raise
        call.done(self._name, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def transport(
    name: str,
    verify: ssl.SSLContext | bool,
    limits: httpx.Limits,
    policy: Retries,
    blocking: bool,
    network: httpx.MockTransport | None = None,
) -> CallLog | AsyncCallLog:
    """The transport stack of one client of connection ``name``; ``network`` stands in for the network (tests)."""
    if blocking:
        inner: httpx.BaseTransport = network or httpx.HTTPTransport(verify=verify, limits=limits, trust_env=False)
        return CallLog(name, RetryTransport(inner, retry=policy), policy)
    ainner: httpx.AsyncBaseTransport = network or httpx.AsyncHTTPTransport(
        verify=verify, limits=limits, trust_env=False
    )
    return AsyncCallLog(name, RetryTransport(ainner, retry=policy), policy)


__all__ = [
    "CID_HEADER",
    "IDEMPOTENT",
    "NO_RETRY",
    "AsyncCallLog",
    "CallLog",
    "Retries",
    "loggable",
    "retries",
    "transport",
]
