"""What a user typed in a form, made into the admin API's JSON without judging it (the admin API does that, and its
refusal is shown as it says it): numbers as numbers, empty fields left out, a JSON text parsed or its mistake
located (line and column) before anything is sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def quoted(name: str) -> str:
    """A name (a topic, a cache key: any text, '/' too) as one segment of an admin API path."""
    return quote(name, safe="")


def typed(text: str) -> Any:
    """``"12"`` -> 12, ``"1.5"`` -> 1.5, anything else as typed (the admin API names what is wrong with it)."""
    text = text.strip()
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def fields(
    form: Mapping[str, Any], texts: Iterable[str] = (), numbers: Iterable[str] = (), flags: Iterable[str] = ()
) -> dict[str, Any]:
    """A body from ``form``: ``texts`` as strings and ``numbers`` typed (both left out when empty), ``flags``
    (checkboxes) true when sent."""
    body: dict[str, Any] = {}
    for name in texts:
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = value
    for name in numbers:
        value = str(form.get(name, "")).strip()
        if value:
            body[name] = typed(value)
    for name in flags:
        body[name] = form.get(name) not in (None, "", "false", "off")
    return body


@dataclass(frozen=True)
class JsonMistake:
    """Where a JSON text is wrong: the form's field, line and column (from 1), and what the parser expected."""

    field: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.field} is not JSON: line {self.line}, column {self.column}: {self.message}"


def parse_json(text: str, field: str) -> tuple[Any, JsonMistake | None]:
    """``(value, None)``, or ``(None, mistake)`` saying where ``text`` (the field ``field``) stops being JSON."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, JsonMistake(field, exc.lineno, exc.colno, exc.msg)


__all__ = ["JsonMistake", "fields", "parse_json", "quoted", "typed"]
