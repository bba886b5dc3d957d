"""What many admin API answers share: each server's outcome of a change, and the shape of bodies and answers."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired, Required

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from ...core.validation import Whole as Whole

BY_MAX = 200
"""The longest ``deployed_by`` / ``applied_by`` (the ODB's column)."""


def body_config(example: dict[str, Any]) -> ConfigDict:
    """A request body: strict types (``false`` is not a number), no unknown fields, one example."""
    return ConfigDict(defer_build=True, extra="forbid", strict=True, json_schema_extra={"examples": [example]})


def answer_config(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(defer_build=True, json_schema_extra={"examples": [example]})


@with_config(
    ConfigDict(
        defer_build=True,
        extra="allow",
        json_schema_extra={"examples": [{"server": "server1", "status": "deployed", "sequence": 7}]},
    )
)
class ServerOutcome(TypedDict, total=False):
    """One server's outcome of a change (deployed, failed, timed_out, unreachable), as the cluster bus carries it."""

    server: Required[str]
    """The member that answered: the server's name, or ``<server>.w<K>`` for worker K of a server of several."""
    status: Required[str]
    sequence: int | None
    loaded: dict[str, int]
    removed: list[str]
    error: str | None
    sync_ms: float
    """Its own catch-up: ``read_ms`` from the ODB plus ``load_ms``."""
    read_ms: float
    load_ms: float
    ms: float
    """The round trip as the server that took the change saw it."""
    via: str


SERVERS_EXAMPLE: list[dict[str, Any]] = [{"server": "server1", "status": "deployed", "sequence": 7}]


class Deleted(BaseModel):
    model_config = answer_config({"deleted": "get-order", "servers": SERVERS_EXAMPLE})

    deleted: str
    servers: list[ServerOutcome]


@with_config(ConfigDict(defer_build=True, extra="allow"))
class ErrorDetail(TypedDict):
    code: str
    message: str
    problems: NotRequired[list[dict[str, Any]]]


class ErrorAnswer(BaseModel):
    """Every error: ``code`` says what went wrong, ``problems`` (when there are several) where."""

    model_config = answer_config(
        {
            "error": {
                "code": "bad_request",
                "message": "the request is not valid: modules[0].source: is required",
                "problems": [{"field": "modules[0].source", "message": "is required"}],
            },
            "cid": "5f1c0e7d9a3b4c2d1e0f9a8b",
        }
    )

    error: ErrorDetail
    cid: str


OpenApiDocument = Annotated[
    dict[str, Any],
    Field(
        description="an OpenAPI 3.1 document",
        examples=[{"openapi": "3.1.0", "info": {"title": "Splice admin API", "version": "1"}, "paths": {}}],
    ),
]
