"""Admin API operations: one ``Operation`` per endpoint, with the models of its body and answer.

The table of operations is the one source of the routes (``routes``), of body checking and answer serialising
(``endpoint``), and of the OpenAPI document (``openapi``). A body is read (limited per operation: refused by its
``Content-Length`` before a byte is read, or as soon as a streamed body goes past the limit), parsed as JSON and
validated into the operation's model; a refusal answers 400 ``bad_request`` naming every bad field, with a
``problems`` list (``{"field": "modules[0].source", "message": "is required"}``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..core.context import current_cid
from ..core.errors import BadRequest, SpliceError, TooLarge
from ..core.validation import Problem, problems
from .channels import MAX_DRAIN
from .responses import CID_HEADER, error_body, error_response, json_response

if TYPE_CHECKING:
    from ..runtime import Runtime

MiB = 1024 * 1024
MAX_BODY = MiB
"""The largest body of an admin operation that names no limit of its own (``Operation.max_body``, ``LIMITS``)."""
DEPLOY_FACTOR = 64
"""A deploy body may hold ``DEPLOY_FACTOR`` x ``deploy.max_module_bytes``: room for 32 modules of the largest size,
each at up to twice its size once JSON escapes its quotes, backslashes and line ends."""
Handler = Callable[["Runtime", Request, Any], Awaitable[Any]]
BodyLimit = Callable[["Runtime"], tuple[int, str]]
"""The body limit of an operation that depends on the cluster's settings: bytes, and the reason the 413 gives."""


class InvalidBody(BadRequest):
    """A body its operation's model refuses: every problem, each naming its field."""

    def __init__(self, found: Sequence[Problem]) -> None:
        self.problems = list(found)
        listed = "; ".join(str(p) for p in self.problems)
        super().__init__(f"the request is not valid: {listed}")

    def as_dict(self) -> dict[str, object]:
        return {**super().as_dict(), "problems": [p.as_dict() for p in self.problems]}


@dataclass(frozen=True, eq=False)
class Operation:
    """One endpoint: ``handler(runtime, request, body)`` answers an instance of ``answer`` (or what it validates)."""

    method: str
    path: str
    """Relative to ``/splice/admin``, with Starlette's converters: ``/channels/{name:path}``."""
    handler: Handler
    summary: str
    answer: Any
    """The answer's type: a pydantic model, or any type a ``TypeAdapter`` takes."""
    body: type[BaseModel] | Any | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    """The error statuses this operation can answer besides 400 (a body) and 401 (the token)."""
    query: type[BaseModel] | None = None
    handler_checks: bool = False
    """The handler takes the JSON object and query as sent and checks them itself; the models only document them."""
    media_type: str = "application/json"
    """Of the answer; only JSON operations are served by ``endpoint`` (the scheduler's dispatch streams)."""
    max_body: int | BodyLimit | None = None
    """The largest body in bytes (or a function of the runtime giving it with its reason); ``None``: the one in
    ``LIMITS`` for this method and path, else ``MAX_BODY``."""

    def body_limit(self, runtime: Runtime) -> tuple[int, str]:
        """The largest body this operation reads, in bytes, and where that limit comes from (for the 413)."""
        limit = self.max_body if self.max_body is not None else LIMITS.get((self.method, self.path))
        if limit is None:
            return MAX_BODY, f"the limit of {self.method} /splice/admin{self.path}"
        if isinstance(limit, int):
            return limit, f"the limit of {self.method} /splice/admin{self.path}"
        return limit(runtime)

    @cached_property
    def body_adapter(self) -> TypeAdapter[Any] | None:
        return None if self.body is None else TypeAdapter(self.body)

    @cached_property
    def answer_adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.answer)

    @cached_property
    def union_tags(self) -> frozenset[str]:
        """The tags of the body's tagged unions, left out of field paths (``kind`` already names the variant)."""
        if self.body_adapter is None:
            return frozenset()
        found: set[str] = set()
        _collect_tags(self.body_adapter.core_schema, found)
        return frozenset(found)

    @property
    def statuses(self) -> tuple[int, ...]:
        """Every status of this operation's answers, in order."""
        bad = (400,) if self.body is not None or self.query is not None else ()
        return tuple(sorted({self.status, *bad, 401, *self.errors}))

    def parse(self, raw: bytes) -> Any:
        """The body as the operation's model; raises ``BadRequest`` naming every problem."""
        adapter = self.body_adapter
        if adapter is None:
            return None
        try:
            value = json.loads(raw) if raw else {}
        except (ValueError, RecursionError) as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise BadRequest("the body must be a JSON object")
        if self.handler_checks:
            return value
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            raise InvalidBody(problems(exc, self.union_tags)) from None

    def parse_query(self, request: Request) -> Any:
        """The query as the operation's model; a parameter the operation does not take is refused too."""
        if self.query is None:
            return None
        unknown = [name for name in request.query_params if name not in self.query.model_fields]
        if unknown:
            raise InvalidBody([Problem(name, "unknown query parameter") for name in dict.fromkeys(unknown)])
        if self.handler_checks:
            return None
        try:
            return self.query.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise InvalidBody(problems(exc)) from None

    def dump(self, answer: Any) -> Any:
        """The answer as JSON values, through its model (so it is what the document says)."""
        if not isinstance(answer, BaseModel):
            answer = self.answer_adapter.validate_python(answer)
        return self.answer_adapter.dump_python(answer, mode="json", by_alias=True)


def _collect_tags(schema: Any, found: set[str]) -> None:
    """The tags of every tagged union in a pydantic core schema (a ``kind`` field's or a callable's)."""
    if isinstance(schema, dict):
        if schema.get("type") == "tagged-union":
            found.update(str(tag) for tag in schema["choices"])
        for value in schema.values():
            _collect_tags(value, found)
    elif isinstance(schema, list):
        for value in schema:
            _collect_tags(value, found)


def deploy_limit(runtime: Runtime) -> tuple[int, str]:
    """A deploy's body limit follows the cluster's ``deploy.max_module_bytes`` (``DEPLOY_FACTOR`` times it)."""
    per_module = runtime.settings.max_module_bytes
    return (
        DEPLOY_FACTOR * per_module,
        f"{DEPLOY_FACTOR} x deploy.max_module_bytes ({per_module}); deploy fewer modules per call",
    )


LIMITS: dict[tuple[str, str], int | BodyLimit] = {
    ("POST", "/deploy"): deploy_limit,
    ("POST", "/invoke"): 16 * MiB,  # a service's payload, as large as a REST channel takes
    ("POST", "/topics/{name}/publish"): 24 * MiB,  # a message of up to 16 MiB (max_payload), base64 in JSON
    ("PUT", "/caches/{name}/entries/{key:path}"): 64 * MiB,  # a cache value (the cache's max_value decides)
    ("POST", "/cluster/events"): 64 * MiB,  # cache values kept in step between servers without Redis
    ("POST", "/apply"): 4 * MiB,  # a declaration file
}
"""The operations whose bodies carry code, payloads or values; every other admin body is small (``MAX_BODY``)."""


async def read_limited(request: Request, limit: int, reason: str) -> bytes:
    """The body, refused (``TooLarge``) by its ``Content-Length`` before anything is read, or as soon as a streamed
    (chunked) body goes past ``limit``: a body over the limit is never held whole."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        await _drain(request, 0)
        raise TooLarge(f"the request body has {int(declared)} bytes, more than {limit} bytes ({reason})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            await _drain(request, size)
            raise TooLarge(f"the request body is larger than {limit} bytes ({reason})")
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request, size: int) -> None:
    """Read and drop the rest of a refused body (never held: each chunk is let go), up to ``MAX_DRAIN`` in all, so
    that the 413 reaches a client behind HAProxy whole (``channels._drain`` says why)."""
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_DRAIN:
            return


def endpoint(runtime: Runtime, operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint of ``operation``: parse, call, serialise; a domain error becomes its answer."""

    async def run(request: Request) -> Response:
        cid = current_cid.get()
        try:
            body = None
            if operation.body is not None:
                body = operation.parse(await read_limited(request, *operation.body_limit(runtime)))
            operation.parse_query(request)
            answer = await operation.handler(runtime, request, body)
        except SpliceError as exc:
            return error_response(exc, cid)
        return json_response(operation.dump(answer), cid, operation.status)

    return run


class AdminRoute(Route):
    """One admin path and every method it serves: another method is a 405 naming them in ``Allow``."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            cid = current_cid.get()
            allow = ", ".join(sorted(self.methods))
            message = f"{scope['method']} is not allowed on {scope['path']} (allowed: {allow})"
            body = error_body(405, "method_not_allowed", message, cid)
            headers = {"allow": allow, CID_HEADER: cid}
            response = Response(body, 405, media_type="application/json", headers=headers)
            return await response(scope, receive, send)
        await super().handle(scope, receive, send)


def routes(runtime: Runtime, prefix: str, table: Sequence[Operation]) -> list[Route]:
    """One route per path of ``table`` (in the table's order), dispatching on the method."""
    by_path: dict[str, dict[str, Callable[[Request], Awaitable[Response]]]] = {}
    for operation in table:
        by_path.setdefault(operation.path, {})[operation.method] = endpoint(runtime, operation)
    out: list[Route] = []
    for path, methods in by_path.items():

        async def dispatch(request: Request, methods: dict[str, Any] = methods) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            response: Response = await methods[method](request)
            return response

        out.append(AdminRoute(prefix + path, dispatch, methods=list(methods)))
    return out
