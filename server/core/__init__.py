"""The service model and what runs it: services, the store, the invoker, typed input and output, naming, errors.

No I/O and no adapters: nothing here imports a web framework, a database driver or a Redis client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .context import current_cid, new_cid
from .errors import (
    BadRequest,
    ConfigError,
    Conflict,
    DeployError,
    FieldProblem,
    HTTPError,
    InvalidInput,
    InvalidOutput,
    NotFound,
    ServiceFailed,
    ServiceNotFound,
    SourceProblem,
    SpliceError,
    TooLarge,
)
from .naming import check_module_path, check_service_name, closest, module_name, service_name
from .service import Request, Response, Service
from .store import ServiceInfo, ServiceStore

if TYPE_CHECKING:
    from .invoker import Invoker


def __getattr__(name: str) -> Any:
    # The invoker needs anyio: imported on first use, so that ``import splice.server`` (user code, the language
    # server, a wheel on its own) needs nothing but the standard library.
    if name == "Invoker":
        from .invoker import Invoker

        return Invoker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BadRequest",
    "ConfigError",
    "Conflict",
    "DeployError",
    "FieldProblem",
    "HTTPError",
    "InvalidInput",
    "InvalidOutput",
    "Invoker",
    "NotFound",
    "Request",
    "Response",
    "Service",
    "ServiceFailed",
    "ServiceInfo",
    "ServiceNotFound",
    "ServiceStore",
    "SourceProblem",
    "SpliceError",
    "TooLarge",
    "check_module_path",
    "check_service_name",
    "closest",
    "current_cid",
    "module_name",
    "new_cid",
    "service_name",
]
