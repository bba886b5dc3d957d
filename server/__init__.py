"""Splice's runtime server. Users import the service model from here: ``from splice.server import Service``."""

from __future__ import annotations

from .core.errors import HTTPError, InvalidInput, ServiceFailed, ServiceNotFound, SpliceError
from .core.service import Request, Response, Service

__all__ = [
    "HTTPError",
    "InvalidInput",
    "Request",
    "Response",
    "Service",
    "ServiceFailed",
    "ServiceNotFound",
    "SpliceError",
]
