"""W3C trace context (https://www.w3.org/TR/trace-context/): a ``traceparent`` a request brings is kept for the call
and passed on to outgoing REST calls, so that the next system joins the same trace.

A valid ``traceparent`` (and its ``tracestate``) is taken as it comes; an invalid one is ignored, as the
specification says. A request that brings none starts a trace only when OpenTelemetry is installed and
configured (a tracer provider set): then its current span's context is used if there is one, else a new trace
id. Without OpenTelemetry nothing is invented. Outgoing calls carry the same trace id with a new parent (span) id,
and the ``tracestate`` unchanged. Log lines of the call carry ``trace_id`` (``splice.server.logs``).
"""

from __future__ import annotations

import functools
import importlib
import os
import re
from collections.abc import Iterable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from types import ModuleType

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_TRACESTATE = 512
"""A longer ``tracestate`` is dropped (the specification lets a vendor cut it; 512 characters is its minimum)."""


@dataclass(frozen=True)
class Trace:
    """The trace a call belongs to: ``trace_id`` (32 hex digits), the caller's span ``parent_id`` (16), ``flags``."""

    trace_id: str
    parent_id: str
    flags: str = "01"
    state: str | None = None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"

    def child(self) -> Trace:
        """The context to send on: the same trace, a new span id as the parent."""
        return Trace(self.trace_id, new_span_id(), self.flags, self.state)


current_trace: ContextVar[Trace | None] = ContextVar("splice_trace", default=None)


def new_span_id() -> str:
    while (span := os.urandom(8).hex()) == _ZERO_SPAN:
        pass
    return span


def parse(traceparent: str, tracestate: str | None = None) -> Trace | None:
    """The trace a ``traceparent`` header names, or ``None`` if it is not a valid one."""
    found = _TRACEPARENT.fullmatch(traceparent.strip())
    if found is None:
        return None
    version, trace_id, parent_id, flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    state = tracestate.strip() if tracestate else None
    if state is not None and (len(state) > MAX_TRACESTATE or not state.isprintable()):
        state = None
    return Trace(trace_id, parent_id, flags, state or None)


def enter(headers: Iterable[tuple[bytes, bytes]]) -> Token[Trace | None] | None:
    """Take the request's ``traceparent`` (if valid; else OpenTelemetry's, if configured) for the call under way;
    ``leave`` with what this returns."""
    parent = state = None
    for key, value in headers:
        if key == b"traceparent":
            parent = value.decode("latin-1")
        elif key == b"tracestate":
            state = value.decode("latin-1") if state is None else f"{state},{value.decode('latin-1')}"
    trace = parse(parent, state) if parent is not None else None
    if trace is None:
        trace = _opentelemetry()
    return current_trace.set(trace) if trace is not None else None


def leave(token: Token[Trace | None] | None) -> None:
    if token is not None:
        current_trace.reset(token)


def current_trace_id() -> str | None:
    trace = current_trace.get()
    return trace.trace_id if trace is not None else None


def outgoing_headers() -> dict[str, str]:
    """The headers that carry the call's trace to a system it calls (none when the call has no trace)."""
    trace = current_trace.get()
    if trace is None:
        return {}
    child = trace.child()
    headers = {"traceparent": child.traceparent}
    if child.state:
        headers["tracestate"] = child.state
    return headers


def _opentelemetry() -> Trace | None:
    """The current OpenTelemetry span's trace, a new trace when a tracer provider is set but no span is current,
    or ``None`` (OpenTelemetry not installed, or not configured)."""
    otel = _otel_module()
    if otel is None:
        return None
    provider = otel.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        return None  # installed, but nobody set a provider: tracing is off
    context = otel.get_current_span().get_span_context()
    if context.is_valid:
        return Trace(f"{context.trace_id:032x}", f"{context.span_id:016x}", f"{int(context.trace_flags):02x}")
    return Trace(os.urandom(16).hex(), new_span_id())


@functools.cache
def _otel_module() -> ModuleType | None:
    """``opentelemetry.trace``, or ``None`` if it is not installed (looked for once: a failed import searches the
    whole path again each time)."""
    try:
        return importlib.import_module("opentelemetry.trace")  # optional: never required
    except ImportError:
        return None


__all__ = ["Trace", "current_trace", "current_trace_id", "enter", "leave", "new_span_id", "outgoing_headers", "parse"]
