"""Splice's language server (pygls): service-aware completion, diagnostics, hover and navigation."""

from __future__ import annotations

__all__: list[str] = []
