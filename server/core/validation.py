"""Pydantic's validation errors as plain problems: a field path (``modules[0].source``) and a message.

The admin API (a 400 naming every bad field) and the declaration reader (``splice.toml:12: channels[1].path: ...``)
both show the same problems: one wording, whichever edge found them. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationError
from pydantic_core import ErrorDetails

from .fields import render


def _whole(value: Any) -> Any:
    # JSON has numbers, not integers: 7.0 is the integer 7 (as JSON Schema says); true is no number at all.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Whole = Annotated[int, BeforeValidator(_whole)]
"""An integer in a strict model: ``7`` or ``7.0``, never ``true`` or ``"7"`` (admin API bodies, specs)."""

_TYPE_ERRORS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}


@dataclass(frozen=True)
class Problem:
    """One field of a body or a declaration that is wrong, and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def json_type(value: object) -> str:
    """How a value's type is named in messages (JSON's words)."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), "an object" if isinstance(value, dict) else type(value).__name__)


def problems(
    exc: ValidationError, skip: Collection[str] = (), type_name: Callable[[object], str] = json_type
) -> list[Problem]:
    """Every problem of ``exc``, in order; ``skip`` names tags of tagged unions, left out of field paths."""
    found = []
    for error in exc.errors():
        loc = error["loc"]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, _discriminator(error))  # the tag's own field, which pydantic leaves out
        found.append(Problem(render(loc, skip=skip), message(error, type_name)))
    return found


def _discriminator(error: ErrorDetails) -> str:
    return str((error.get("ctx") or {}).get("discriminator", "")).strip("'")


def message(error: ErrorDetails, type_name: Callable[[object], str] = json_type) -> str:
    """What is wrong, in the house's words (``is required``, ``must be a string, got an integer``)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    if kind in _TYPE_ERRORS:
        return f"must be {_TYPE_ERRORS[kind]}, got {type_name(value)}"
    if kind == "extra_forbidden":
        return "unknown field"
    return _bounds(kind, ctx, value) or _choices(kind, ctx, value) or _custom(error)


def _bounds(kind: str, ctx: dict[str, Any], value: object) -> str | None:
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must be at least {least} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return f"must have at least {least} item{'s' if least != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    words = {"greater_than_equal": ("ge", ">="), "less_than_equal": ("le", "<="), "greater_than": ("gt", ">")}
    words["less_than"] = ("lt", "<")
    if kind in words:
        key, sign = words[kind]
        return f"must be {sign} {ctx.get(key)}, got {value!r}"
    return None


def _choices(kind: str, ctx: dict[str, Any], value: object) -> str | None:
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {value!r}"
    if kind == "union_tag_invalid":
        name = str(ctx.get("discriminator", "")).strip("'")
        got = value.get(name, ctx.get("tag")) if isinstance(value, dict) else ctx.get("tag")
        known = str(ctx.get("expected_tags", "")).replace("'", "")
        return f"must be one of {ctx.get('expected_tags')}, got {got!r} (known {name}s: {known})"
    if kind == "union_tag_not_found":
        return "is required"
    return None


def _custom(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])  # our own ValueError's text, without pydantic's "Value error, " prefix
    return str(error["msg"])
