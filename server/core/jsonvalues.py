"""JSON as the server sends it: always valid (RFC 8259), a few well-known types encoded on purpose, the rest refused.

Encoded on purpose:

- ``datetime``, ``date``, ``time``: ISO 8601 (``isoformat()``; a naive value stays without an offset);
- ``UUID``: its canonical string;
- ``Decimal``: a string (``"12.30"``), so that no digit is lost: most JSON readers turn a number into a binary
  float (``0.1 + 0.2``), which is why money is sent as text;
- ``Enum``: its value (encoded in turn); a tuple: an array, as ``json`` always did.

Refused (``Unencodable``, naming the place as a JSON path such as ``$.items[2].tags`` and why): ``NaN`` and the
infinities (JSON has no such numbers; ``json`` would write ``NaN``, which no strict reader accepts), a cycle,
sets, ``bytes`` inside a value (a payload that *is* ``bytes`` is sent as it is; inside JSON, send
``base64.b64encode(data).decode()``: the receiver has to know to decode it, so it is the service's choice), keys
that are no strings or numbers, strings that are not Unicode (lone surrogates), and every other object (``json``'s
old ``default=str`` sent ``"<object object at 0x7f...>"``, leaking memory addresses, and a set as ``"{1, 2}"``).

The fast path is orjson, held to these rules: a datetime, date or time reaches ``_default`` (``isoformat()``, as
before; orjson's own form differs); a dataclass and a subclass of a built-in type (a ``dict`` or ``str`` subclass)
go on to the standard library's C encoder, as does any value orjson refuses (an integer past 64 bits, a key that is
no string, a nesting deeper than 255) and any answer orjson wrote ``null`` in: orjson writes NaN and the infinities
as ``null``, which these rules refuse (so an answer holding a real ``null`` is encoded twice). Only a refused value
is walked again in Python, to say where the problem is. The two encoders agree on every byte but one: a float
smaller than 1e-4 and at least 1e-9 is written ``1e-7`` where ``json`` wrote ``1e-07``, and ``0.00004`` for
``4e-05``: the same number.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Unencodable(ValueError):
    """A value JSON cannot carry: ``where`` (a JSON path), ``what`` it is, and ``why``."""

    def __init__(self, where: str, what: str, why: str) -> None:
        self.where, self.what, self.why = where, what, why
        super().__init__(f"{what} at {where}: {why}")


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(type(value).__name__)


_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS
_STDLIB = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, or ``Unencodable`` saying where and why JSON cannot carry it."""
    try:
        out = orjson.dumps(value, default=_default, option=_OPTIONS)
    except (TypeError, ValueError):
        pass
    else:
        if b"null" not in out:
            return out
    try:
        return _STDLIB.encode(value).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        problem = locate(value)
        if problem is None:
            problem = Unencodable("$", "a value", f"JSON cannot carry it ({type(exc).__name__}: {exc})")
        raise problem from None


def locate(value: Any) -> Unencodable | None:
    """The first place in ``value`` that JSON cannot carry, or ``None``."""
    try:
        return _locate(value, "$", [])
    except RecursionError:
        return Unencodable("$", "a value", "nested deeper than Python's recursion limit")


def _locate(value: Any, where: str, parents: list[int]) -> Unencodable | None:
    if value is None or isinstance(value, bool | int | datetime | date | time | UUID):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else Unencodable(where, repr(value), "JSON has no NaN or Infinity")
    if isinstance(value, Decimal):
        return (
            None if value.is_finite() else Unencodable(where, f"Decimal({str(value)!r})", "JSON has no NaN or Infinity")
        )
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return Unencodable(where, "a string with a lone surrogate", "it is not Unicode text")
        return None
    if isinstance(value, Enum):
        return _locate(value.value, where, parents)
    if isinstance(value, dict | list | tuple):
        if id(value) in parents:
            return Unencodable(where, f"a {type(value).__name__}", "a cycle: it contains itself")
        parents.append(id(value))
        try:
            return _members(value, where, parents)
        finally:
            parents.pop()
    if isinstance(value, set | frozenset):
        return Unencodable(where, "a set", "JSON has no sets (send a sorted list)")
    if isinstance(value, bytes | bytearray | memoryview):
        return Unencodable(where, "bytes", "JSON has no bytes (send base64.b64encode(data).decode())")
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__} object"
    what = f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
    return Unencodable(where, what, "JSON cannot carry it (convert it to a dict, list, str or number)")


def _members(value: dict[Any, Any] | list[Any] | tuple[Any, ...], where: str, parents: list[int]) -> Unencodable | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                what = f"a key of type {type(key).__name__}"
                return Unencodable(where, what, "JSON object keys are strings (str, int, float, bool or None)")
            found = _locate(item, _child(where, key), parents)
            if found is not None:
                return found
        return None
    for index, item in enumerate(value):
        found = _locate(item, f"{where}[{index}]", parents)
        if found is not None:
            return found
    return None


def _child(where: str, key: Any) -> str:
    text = key if isinstance(key, str) else json.dumps(key)
    return f"{where}.{text}" if _NAME.match(text) else f"{where}[{json.dumps(text, ensure_ascii=False)}]"


__all__ = ["Unencodable", "dumps", "locate"]
