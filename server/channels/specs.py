"""What a REST channel and a security definition may be: one pydantic model each, for every edge.

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
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from ..core.naming import MAX_SERVICE_NAME, check_service_name
from . import routing
from .security import KINDS

DEFAULT_HEADER = "X-API-Key"
SECRET_FIELD = {"basic": "password", "apikey": "key"}
"""The name a kind gives its secret; a file names the variable holding it as ``<field>_env``."""
MAX_PATH = 500
MAX_TEXT = 200
"""The longest channel path, and the longest user name or header name (the ODB's columns)."""

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$"
HEADER_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"
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
_SPEC = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChannelSpec(BaseModel):
    """A REST channel: requests to ``path`` with one of ``methods`` invoke ``service``, checked by ``security``."""

    model_config = _SPEC

    name: Name
    path: ChannelPath
    service: Name
    methods: Methods = Field(default_factory=lambda: ["GET"], description="default GET; HEAD is allowed with GET")
    security: Name | None = None


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
    "DEFAULT_HEADER",
    "KINDS",
    "SECRET_FIELD",
    "ApiKeySecurity",
    "BasicSecurity",
    "ChannelSpec",
    "SecuritySpec",
]
