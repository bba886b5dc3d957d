"""The one error hierarchy of Splice.

The core raises these; each edge translates them (HTTP status and JSON body, CLI message and exit
code, LSP diagnostic). An error names what went wrong with its ``code``; which HTTP status that is, is
the HTTP edge's business (``splice.server.http.responses``), never the domain's. Every error carries
the fields an edge needs and says what was wrong and where in its ``__str__``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SpliceError(Exception):
    """Base class of every error Splice raises on purpose."""

    code = "error"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self)}


@dataclass(frozen=True)
class SourceProblem:
    """One thing wrong with one deployed module, located in its file."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None
    kind: str = "error"
    traceback: str | None = None

    def __str__(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "line": self.line, "column": self.column}
        out.update(kind=self.kind, message=self.message)
        if self.traceback:
            out["traceback"] = self.traceback
        return out


class DeployError(SpliceError):
    """A deployment was refused; nothing was replaced."""

    code = "deploy_failed"

    def __init__(self, problems: Sequence[SourceProblem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self), "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True)
class FieldProblem:
    """One input or output field that does not match its declaration."""

    field: str
    message: str
    where: str = "payload"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "where": self.where}


class _FieldsError(SpliceError):
    template = "{service}: {listed}"

    def __init__(self, service: str, problems: Sequence[FieldProblem]) -> None:
        self.service = service
        self.problems = list(problems)
        listed = ", ".join(f"{p.field}: {p.message}" for p in self.problems)
        super().__init__(self.template.format(service=service, listed=listed))

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["fields"] = [p.as_dict() for p in self.problems]
        return out


class InvalidInput(_FieldsError):
    """A service's declared input was not met; ``handle()`` was not called."""

    code = "invalid_input"
    template = "invalid input for service '{service}': {listed}"


class InvalidOutput(_FieldsError):
    """A service returned output that does not match its declaration."""

    code = "invalid_output"
    template = "service '{service}' returned invalid output: {listed}"


class ServiceNotFound(SpliceError):
    code = "service_not_found"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no service named '{name}' is deployed")


class ServiceFailed(SpliceError):
    """A service raised; ``chain`` lists the services from the outermost to the one that raised."""

    code = "service_failed"

    def __init__(self, chain: Sequence[str], cid: str, error: BaseException) -> None:
        self.chain = list(chain)
        self.cid = cid
        self.error = error
        super().__init__(f"service '{' -> '.join(self.chain)}' failed: {type(error).__name__}: {error}")

    @property
    def service(self) -> str:
        return self.chain[-1]

    def as_dict(self) -> dict[str, object]:
        out = super().as_dict()
        out["service"] = self.service
        out["chain"] = self.chain
        return out


class HTTPError(SpliceError):
    """Raised by a service to answer with a given HTTP status and message (the one error that names a status:
    the service chose it)."""

    code = "http_error"

    def __init__(self, status: int, message: str = "") -> None:
        self.status = status
        super().__init__(message or f"HTTP {status}")


class NotFound(SpliceError):
    code = "not_found"


class Conflict(SpliceError):
    code = "conflict"


class BadRequest(SpliceError):
    code = "bad_request"


class TooLarge(SpliceError):
    code = "too_large"


class Forbidden(SpliceError):
    """The caller is known (its credentials are right) but may not do this; the message says what it may do."""

    code = "forbidden"


@dataclass
class ConfigError(SpliceError):
    """The cluster's configuration is wrong: says which file and which field."""

    file: str
    message: str
    field: str | None = None

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class CallTimedOut(SpliceError):
    """A service did not answer within its timeout (``[calls] timeout``, or its class's ``timeout``).

    An ``async def`` service was cancelled; a plain ``def`` one still runs in its thread (a thread cannot be killed):
    its result will be dropped, and the thread counts as busy until it ends."""

    code = "timeout"

    def __init__(self, service: str, timeout: float, source: str, cid: str) -> None:
        self.service = service
        self.timeout = timeout
        self.source = source
        self.cid = cid
        super().__init__(f"service '{service}' did not answer within {timeout:g} s (its timeout: {source})")

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "service": self.service, "timeout": self.timeout}


class Overloaded(SpliceError):
    """Every worker thread is busy and the queue of calls waiting for one is full: the call was refused at once
    (the service was not run). ``retry_after`` is the seconds a caller should wait before it tries again."""

    code = "overloaded"

    def __init__(self, service: str, busy: int, size: int, queued: int, queue: int, retry_after: int = 1) -> None:
        self.service = service
        self.threads = {"busy": busy, "size": size, "queued": queued, "queue": queue}
        self.retry_after = retry_after
        super().__init__(
            f"service '{service}' was not run: this server is overloaded (all {size} worker threads are busy and "
            f"the queue of calls waiting for one is full: {queued} of {queue}); retry after {retry_after} s, "
            "or raise [calls] threads and queue in cluster.toml"
        )

    @property
    def headers(self) -> dict[str, str]:
        """What the HTTP edge adds to the 503 answer."""
        return {"Retry-After": str(self.retry_after)}

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "service": self.service, "threads": self.threads, "retry_after": self.retry_after}


class OdbUnavailable(SpliceError, ConnectionError):
    """The ODB cannot be reached (stopped, restarting, unreachable, or the connection broke): what needed it was not
    done. A ``ConnectionError`` too, so a loop that waits out a connection failure waits this out alike; servers
    keep serving what they have loaded, and catch up by themselves once the ODB is back."""

    code = "odb_unavailable"

    def __init__(self, odb: str, reason: str) -> None:
        self.odb = odb
        self.reason = reason
        SpliceError.__init__(
            self,
            f"the ODB ({odb}) cannot be reached: {reason}; nothing that needs it can be done now (servers keep "
            "serving what they have); try again once it is back",
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "odb": self.odb}
