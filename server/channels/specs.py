"""What a channel (of each kind) and a security definition may be: one pydantic model each, for every edge.

The admin API (``POST /splice/admin/channels``, ``POST /splice/admin/security``) and the declaration reader
(``splice.toml``, ``splice apply``) both check specs with these models, so neither can create what the other
cannot express. The rules' messages come from the pure checks (``routing.check_pattern``,
``naming.check_service_name``), and every rule is also in the JSON schema the OpenAPI document shows.

A security definition's secret comes from the caller (``password``/``key`` in an admin API call) or from an
environment variable a file names (``password_env``/``key_env``): each edge adds that one field to the
spec (``BasicSecurity``, ``ApiKeySecurity``), the rest is shared.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ..core.naming import HEADER_PATTERN, MAX_SERVICE_NAME, check_service_name
from ..core.validation import Whole
from . import routing
from .security import KINDS

DEFAULT_HEADER = "X-API-Key"
SECRET_FIELD = {"basic": "password", "apikey": "key"}
"""The name a kind gives its secret; a file names the variable holding it as ``<field>_env``."""
MAX_PATH = 500
MAX_TEXT = 200
"""The longest channel path, and the longest user name or header name (the ODB's columns)."""

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$"
_PARAM = r"\{[A-Za-z_][A-Za-z0-9_]*(?::(?:str|int|path))?\}"
_TWICE = r"(?!.*\{([A-Za-z_][A-Za-z0-9_]*)(?::(?:str|int|path))?\}.*\{\1(?::(?:str|int|path))?\})"
CHANNEL_PATH_PATTERN = rf"^{_TWICE}/(?!splice(?:/|$))(?:[^{{}}]|{_PARAM})*$"
"""``routing.check_pattern`` as a regular expression (ECMA, for the JSON schema): tests keep the two in step."""
METHOD_PATTERN = "^(?:" + "|".join("".join(f"[{c}{c.lower()}]" for c in m) for m in sorted(routing.METHODS)) + ")$"

_HEADER = re.compile(HEADER_PATTERN)


def _name(value: str) -> str:
    problem = check_service_name(value)
    if problem:
        raise PydanticCustomError("name", problem.replace("a service name", "a name").replace("service name", "name"))
    return value


def _path(value: str) -> str:
    problem = routing.check_pattern(value)
    if problem:
        raise PydanticCustomError("channel_path", problem)
    if len(value) > MAX_PATH:
        raise PydanticCustomError("channel_path", f"must be at most {MAX_PATH} characters long")
    return value


def _methods(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise PydanticCustomError("methods", f'must be an array of strings such as ["GET", "POST"], got {value!r}')
    if not value:
        raise PydanticCustomError("methods", "must name at least one HTTP method")
    try:
        return routing.check_methods(value)
    except ValueError as exc:
        raise PydanticCustomError("methods", str(exc)) from None


def _username(value: str) -> str:
    if not value:
        raise PydanticCustomError("username", "must not be empty")
    if ":" in value:
        raise PydanticCustomError("username", "must not contain ':' (HTTP Basic separates user and password with it)")
    if len(value) > MAX_TEXT:
        raise PydanticCustomError("username", f"must be at most {MAX_TEXT} characters long")
    return value


def _header(value: str) -> str:
    if not _HEADER.fullmatch(value) or len(value) > MAX_TEXT:
        raise PydanticCustomError("header", f"is not a valid HTTP header name: {value!r}")
    return value


Name = Annotated[
    str,
    AfterValidator(_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_SERVICE_NAME, "pattern": NAME_PATTERN}),
]
"""A channel's, a service's or a security definition's name (``naming.check_service_name``)."""
ChannelPath = Annotated[
    str,
    AfterValidator(_path),
    WithJsonSchema(
        {"type": "string", "maxLength": MAX_PATH, "pattern": CHANNEL_PATH_PATTERN, "examples": ["/orders/{id}"]}
    ),
]
Methods = Annotated[
    list[str],
    BeforeValidator(_methods),
    WithJsonSchema(
        {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": METHOD_PATTERN}, "examples": [["GET"]]}
    ),
]
Username = Annotated[
    str,
    AfterValidator(_username),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": "^[^:]*$"}),
]
HeaderName = Annotated[
    str,
    AfterValidator(_header),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": HEADER_PATTERN}),
]
_SPEC = ConfigDict(defer_build=True, extra="forbid", strict=True, frozen=True)
MAX_WS_MESSAGE = 16 * 1024 * 1024
"""The largest WebSocket message any channel may allow (the server's own limit)."""
_QUEUE_PATTERN = r"^[A-Za-z0-9_.:/-]{1,255}$"
QueueName = Annotated[
    str,
    Field(pattern=_QUEUE_PATTERN, description="an AMQP queue name: letters, digits and '_ . : / -'"),
]
_SERVICE_PATTERN = r"^[A-Za-z0-9_*][A-Za-z0-9_.:/*-]*$"
ServicePattern = Annotated[
    str,
    Field(min_length=1, max_length=MAX_SERVICE_NAME, pattern=_SERVICE_PATTERN, description="a name; '*' matches any"),
]
DirectoryPath = Annotated[
    str,
    Field(min_length=1, max_length=1000, pattern=r"^[^\x00]+$", description="absolute, or relative to the cluster"),
]


class ChannelSpec(BaseModel):
    """A REST channel: requests to ``path`` with one of ``methods`` invoke ``service``, checked by ``security``."""

    model_config = _SPEC

    name: Name
    kind: Literal["rest"] = "rest"
    path: ChannelPath
    service: Name
    methods: Methods = Field(default_factory=lambda: ["GET"], description="default GET; HEAD is allowed with GET")
    security: Name | None = None

    OPTIONS: ClassVar[tuple[str, ...]] = ()


class WebSocketChannel(BaseModel):
    """A WebSocket endpoint at ``path``: each JSON message invokes ``service``; its answer goes back on the socket.

    ``security`` is checked at the handshake. A service can push to connected clients (``self.websockets``).
    """

    model_config = _SPEC

    name: Name
    kind: Literal["websocket"]
    path: ChannelPath
    service: Name
    security: Name | None = None
    max_message: Whole = Field(default=1024 * 1024, ge=1, le=MAX_WS_MESSAGE, description="bytes; larger closes 1009")
    idle_timeout: float = Field(default=300.0, gt=0, le=86400, description="seconds without a message before close")
    ping_interval: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="seconds between pings the server sends (none by default: idle_timeout closes dead sockets)",
    )

    OPTIONS: ClassVar[tuple[str, ...]] = ("max_message", "idle_timeout", "ping_interval")


class JsonRpcChannel(BaseModel):
    """JSON-RPC 2.0 over HTTP at ``path`` (POST): the method is a service's name; batches run concurrently."""

    model_config = _SPEC

    name: Name
    kind: Literal["jsonrpc"]
    path: ChannelPath
    security: Name | None = None
    services: list[ServicePattern] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        max_length=100,
        description="which services may be called: names or patterns (orders.*); default every service",
    )
    max_batch: Whole = Field(default=100, ge=1, le=10000, description="calls in one batch")

    OPTIONS: ClassVar[tuple[str, ...]] = ("services", "max_batch")


class AmqpChannel(BaseModel):
    """Messages from ``queue`` on the AMQP outgoing connection ``connection`` invoke ``service``, on every server.

    A message is acknowledged after the service succeeded; a failure is retried ``retries`` times with backoff,
    then the message goes to the ``dead_letter`` queue (``<queue>.dead`` by default).
    """

    model_config = _SPEC

    name: Name
    kind: Literal["amqp"]
    service: Name
    connection: Name
    queue: QueueName
    prefetch: Whole = Field(default=10, ge=1, le=10000, description="unacknowledged messages per server")
    retries: Whole = Field(default=3, ge=0, le=100, description="retries of a failed message before dead-lettering")
    backoff: float = Field(default=1.0, ge=0, le=3600, description="seconds before the first retry, doubled each time")
    dead_letter: QueueName | None = Field(default=None, description="default: '<queue>.dead'")
    declare: bool = Field(default=True, description="declare the queue (durable) if it does not exist")

    OPTIONS: ClassVar[tuple[str, ...]] = (
        "connection",
        "queue",
        "prefetch",
        "retries",
        "backoff",
        "dead_letter",
        "declare",
    )


class FileChannel(BaseModel):
    """Each complete file dropped in ``directory`` invokes ``service`` with its bytes, then moves to ``done/`` or
    ``failed/``; exactly one server takes each file."""

    model_config = _SPEC

    name: Name
    kind: Literal["file"]
    service: Name
    directory: DirectoryPath
    pattern: str = Field(default="*", min_length=1, max_length=200, description="a glob for file names")
    settle: float = Field(default=0.5, ge=0, le=3600, description="seconds a file must stay unchanged to be complete")
    max_bytes: Whole = Field(default=64 * 1024 * 1024, ge=1, le=1024**3, description="larger files go to failed/")
    concurrency: Whole = Field(default=4, ge=1, le=1000, description="files handled at once on each server")

    OPTIONS: ClassVar[tuple[str, ...]] = ("directory", "pattern", "settle", "max_bytes", "concurrency")


def channel_kind(value: Any) -> str:
    kind = value.get("kind", "rest") if isinstance(value, dict) else getattr(value, "kind", "rest")
    return kind if isinstance(kind, str) else "rest"


AnyChannel = Annotated[
    Annotated[ChannelSpec, Tag("rest")]
    | Annotated[WebSocketChannel, Tag("websocket")]
    | Annotated[JsonRpcChannel, Tag("jsonrpc")]
    | Annotated[AmqpChannel, Tag("amqp")]
    | Annotated[FileChannel, Tag("file")],
    Discriminator(channel_kind),
]
"""A channel of any kind, told apart by ``kind`` (``rest`` when left out)."""
CHANNEL_KINDS = ("rest", "websocket", "jsonrpc", "amqp", "file")
ChannelOfAnyKind = ChannelSpec | WebSocketChannel | JsonRpcChannel | AmqpChannel | FileChannel


def channel_from_row(row: dict[str, Any]) -> ChannelOfAnyKind:
    """A stored channel (``odb.channels`` row: columns plus ``options``) as its kind's spec."""
    values: dict[str, Any] = {"name": row["name"], "kind": row.get("kind") or "rest", "service": row["service"]}
    if values["kind"] in ("rest", "websocket", "jsonrpc"):
        values["path"] = row["path"]
        values["security"] = row.get("security")
    if values["kind"] == "rest":
        values["methods"] = row["methods"]
    if values["kind"] == "jsonrpc":
        values.pop("service")
    values.update(row.get("options") or {})
    adapter: TypeAdapter[ChannelOfAnyKind] = TypeAdapter(AnyChannel)
    return adapter.validate_python(values, strict=False)


def channel_columns(spec: ChannelOfAnyKind) -> dict[str, Any]:
    """What the ODB keeps of ``spec``: its columns (path, methods, service) and the rest as ``options``."""
    return {
        "kind": spec.kind,
        "path": getattr(spec, "path", ""),
        "methods": list(getattr(spec, "methods", [])),
        "service": getattr(spec, "service", ""),
        "security": getattr(spec, "security", None),
        "options": {key: _json(getattr(spec, key)) for key in type(spec).OPTIONS} or None,
    }


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


class BasicSecurity(BaseModel):
    """HTTP Basic: the caller sends ``username`` and the password."""

    model_config = _SPEC

    name: Name
    kind: Literal["basic"]
    username: Username

    @property
    def header(self) -> None:
        return None


class ApiKeySecurity(BaseModel):
    """An API key in a request header (``X-API-Key`` unless ``header`` says otherwise)."""

    model_config = _SPEC

    name: Name
    kind: Literal["apikey"]
    header: HeaderName = DEFAULT_HEADER

    @property
    def username(self) -> None:
        return None


SecuritySpec = BasicSecurity | ApiKeySecurity

__all__ = [
    "CHANNEL_KINDS",
    "DEFAULT_HEADER",
    "KINDS",
    "SECRET_FIELD",
    "AmqpChannel",
    "AnyChannel",
    "ApiKeySecurity",
    "BasicSecurity",
    "ChannelOfAnyKind",
    "ChannelSpec",
    "FileChannel",
    "JsonRpcChannel",
    "SecuritySpec",
    "WebSocketChannel",
    "channel_columns",
    "channel_from_row",
]
