"""The HTTP edge: ping, the admin API and REST channels as one ASGI application."""

from __future__ import annotations

from .app import build_app

__all__ = ["build_app"]
