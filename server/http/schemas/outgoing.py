"""Bodies and answers of outgoing connections: a kind's spec plus its secrets in; the spec, secrets masked, out.

A body is the kind's spec (``connections.<kind>.<Kind>Spec``, what a ``[[outgoing]]`` table of splice.toml
says) plus the secrets that kind takes (``password``, ``key``, ``token``) as values: they are encrypted with
the cluster key before they are stored and never come back. Answers show a set secret as ``"***"``.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, create_model, with_config
from typing_extensions import TypedDict

from ...connections import KINDS, MASK, OutgoingSpec
from ...connections.registry import address_schema
from .common import SERVERS_EXAMPLE, ServerOutcome, answer_config

SECRET_DESCRIPTION = "kept encrypted with the cluster key, never shown again (answers say '***')"
EXAMPLES: dict[str, dict[str, Any]] = {
    "rest": {"name": "billing", "kind": "rest", "address": "https://billing.example.com/api", "token": "t0k3n"},
    "sql": {"name": "crm", "kind": "sql", "address": "postgresql://crm@127.0.0.1/crm", "password": "pa55"},
    "redis": {"name": "sessions", "kind": "redis", "address": "redis://127.0.0.1:6379/0"},
    "amqp": {"name": "orders", "kind": "amqp", "address": "amqp://guest@127.0.0.1:5672/", "password": "guest"},
}


def _schema_with(example: dict[str, Any]) -> Any:
    def extra(schema: dict[str, Any], cls: type[BaseModel]) -> None:
        address_schema(schema, cls)
        schema["examples"] = [example]

    return extra


BODIES: dict[str, type[OutgoingSpec]] = {}
for _kind in KINDS.values():
    _secrets: dict[str, Any] = {
        name: (str | None, Field(default=None, min_length=1, max_length=4000, description=SECRET_DESCRIPTION))
        for name in _kind.spec.SECRETS
    }
    _example = EXAMPLES.get(_kind.name, {"name": "x", "kind": _kind.name, "address": "..."})
    BODIES[_kind.name] = create_model(
        f"{_kind.spec.__name__.removesuffix('Spec')}Body",
        __base__=_kind.spec,
        __doc__=(_kind.spec.__doc__ or "") + f"\n\nSecrets: {', '.join(_kind.spec.SECRETS)}.",
        **_secrets,
    )
    BODIES[_kind.name].model_config["json_schema_extra"] = _schema_with(_example)
    BODIES[_kind.name].model_rebuild(force=True)

OutgoingBody = Annotated[Union[tuple(BODIES.values())], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007
"""One body per registered kind, told apart by ``kind``."""


@with_config(
    {
        "extra": "allow",
        "json_schema_extra": {
            "examples": [{"name": "billing", "kind": "rest", "address": "https://billing.example.com", "token": MASK}]
        },
    }
)
class OutgoingRow(TypedDict):
    """A connection as its spec says, every set secret as ``"***"``."""

    name: str
    kind: str
    address: str


class OutgoingList(BaseModel):
    model_config = answer_config(
        {"outgoing": [{"name": "billing", "kind": "rest", "address": "https://billing.example.com/api", "token": MASK}]}
    )

    outgoing: list[OutgoingRow]


class OutgoingAnswer(BaseModel):
    """The connection as stored (secrets masked), whether it was created, and each server's outcome."""

    model_config = answer_config(
        {
            "outgoing": {"name": "billing", "kind": "rest", "address": "https://billing.example.com/api"},
            "created": True,
            "servers": SERVERS_EXAMPLE,
        }
    )

    outgoing: OutgoingRow
    created: bool
    servers: list[ServerOutcome]


class PingResult(TypedDict, total=False):
    server: str
    ok: bool
    ms: float
    detail: str
    error: str


class PingAnswer(BaseModel):
    """Each live server's attempt to reach the connection's remote system."""

    model_config = answer_config(
        {
            "name": "billing",
            "ok": True,
            "servers": [{"server": "server1", "ok": True, "ms": 3.2, "detail": "HTTP 200 from https://billing..."}],
        }
    )

    name: str
    ok: bool
    servers: list[PingResult]


class PingQuery(BaseModel):
    model_config = {"extra": "forbid"}

    here: bool = Field(default=False, description="ping from this server only (how servers ask each other)")
