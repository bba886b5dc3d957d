"""The kinds of outgoing connection: each is one module that registers its spec and how to open it.

A kind module (``rest.py``, ``sql.py``, ``redis.py``, ``amqp.py``) defines a pydantic spec, a subclass of
``OutgoingSpec`` with ``kind: Literal["<kind>"]`` and its own options, and a function that opens a
``Connection`` from a checked spec and its secrets, then calls ``register(Kind(...))``. Adding a kind later
is one module and one line in ``kinds.py``. Modules import their client library (httpx, SQLAlchemy,
redis-py, aio-pika) inside ``open``, not at import time: a server pays only for the kinds it uses.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Protocol
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic_core import PydanticCustomError

logger = logging.getLogger("splice.outgoing")
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$"
_NAME = re.compile(NAME_PATTERN)


def _name(value: str) -> str:
    if not _NAME.fullmatch(value) or len(value) > 200:
        raise PydanticCustomError(
            "connection_name",
            "a connection name holds 1 to 200 letters, digits and '_ . : -', and starts with a letter, digit or '_'",
        )
    return value


ConnectionName = Annotated[
    str,
    AfterValidator(_name),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": NAME_PATTERN}),
]
"""An outgoing connection's name: like a service's, but no '/' (it is one segment of the admin API's paths)."""


_AUTHORITY = r"(?:[A-Za-z0-9._~%+-]+@)?(?:[A-Za-z0-9._~-]+)?(?::[0-9]{1,5})?(?:[/?][!$-~]*)?$"
"""After ``scheme://``: a user without a password, a host, a port, then a path and query of printable ASCII
(no quotes, no fragment: a ``#`` is where the URL parsers of drivers disagree)."""


def address_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Put the address rules in the JSON schema the OpenAPI document shows (each kind's validator words them)."""
    address = schema.get("properties", {}).get("address")
    if address is None:
        return
    declared: tuple[str, ...] = getattr(cls, "SCHEMES", ())
    schemes = [s for s in declared if not s.startswith("sqlite")]
    files = [s for s in declared if s.startswith("sqlite")]
    choices = [f"(?:{'|'.join(schemes) or '[a-z][a-z0-9+.-]*'})://{_AUTHORITY}"]
    if files:
        choices.append(f"(?:{'|'.join(files)}):///[!$-~]+$")
    address["pattern"] = "^(?:" + "|".join(choices) + ")"


class OutgoingSpec(BaseModel):
    """What every outgoing connection has: a name, a kind, an address (URL or DSN, never with a password)."""

    model_config = ConfigDict(
        defer_build=True, extra="forbid", strict=True, frozen=True, json_schema_extra=address_schema
    )

    SCHEMES: ClassVar[tuple[str, ...]] = ()
    """The URL schemes (regular expressions) ``address`` may start with: the kind's validator says so in words,
    the JSON schema by pattern (``sqlite...`` ones name a file: ``sqlite:///path``)."""
    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    """The secrets this kind takes (``password``, ``key``, ``token``): set in the admin API body, named by
    ``<secret>_env`` in splice.toml, kept encrypted in the ODB, never shown."""

    name: ConnectionName
    kind: str
    address: str = Field(min_length=1, max_length=2000, description="a URL or DSN, without its password")
    username: str | None = Field(default=None, max_length=200)

    @classmethod
    def secret_problems(cls, username: str | None, secrets: Collection[str]) -> list[tuple[str, str]]:
        """What is wrong with setting ``secrets`` (their names) on such a connection: ``(secret, message)`` pairs.

        One rule for every edge (the admin API, splice.toml); a kind whose secrets depend on each other says so.
        """
        return []

    @field_validator("address")
    @classmethod
    def _no_password(cls, value: str) -> str:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            raise ValueError(
                "must not hold a password: give it as 'password' (admin API) or 'password_env' (splice.toml),"
                " where it is kept encrypted"
            )
        return value


class Connection(Protocol):
    """One outgoing connection on one server, opened from its spec; its clients are pooled and made on first use."""

    def client(self, blocking: bool) -> Any:
        """What ``self.out.<kind>[name]`` gives: the blocking client in a worker thread, else the async one."""
        ...

    async def ping(self) -> str:
        """Reach the remote system once; answers a short description, raises if it cannot be reached."""
        ...

    async def aclose(self) -> None:
        """Close every client and pool (after the last call using them ended)."""
        ...


Opener = Callable[[Any, Mapping[str, str], str], Connection]
"""``open(spec, secrets, server_name)``: ``secrets`` maps ``password``/``key``/``token`` to their values."""


@dataclass(frozen=True)
class Kind:
    name: str
    spec: type[OutgoingSpec]
    open: Opener


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind


def log_call(kind: str, name: str, what: str, started: float, error: BaseException | None = None) -> None:
    """One line per outgoing call, with its duration (the cid comes from the log filter)."""
    ms = (time.perf_counter() - started) * 1000
    if error is None:
        logger.info("%s %s: %s in %.1f ms", kind, name, what, ms)
    else:
        logger.warning("%s %s: %s failed after %.1f ms: %s", kind, name, what, ms, error)


__all__ = [
    "KINDS",
    "Connection",
    "Kind",
    "Opener",
    "OutgoingSpec",
    "address_schema",
    "log_call",
    "register",
]
