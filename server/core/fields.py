"""Declared input and output of services, and checking values against them.

A service declares its fields with nested classes whose annotations are the fields::

    class CreateOrder(Service):
        class Input:
            customer_id: int
            items: list[str]
            note: str | None = None     # a default makes a field optional

        class Output:
            order_id: int

Supported types: ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``Any``, ``list[T]``,
``dict[str, T]`` and unions such as ``T | None``. Values that arrive as text (path parameters and
query strings) are converted to the declared ``int``, ``float`` or ``bool``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FieldProblem

_MISSING: Any = object()
Checker = Callable[[object, bool], tuple[object, str | None]]
"""Takes a value and whether it arrived as text; returns the converted value and a problem or ``None``."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool
    default: object
    check: Checker

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "required": self.required}
        if not self.required and _json_safe(self.default):
            out["default"] = self.default
        return out


def _json_safe(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _scalar(kind: type, label: str) -> Checker:
    def check(value: object, textual: bool) -> tuple[object, str | None]:
        if textual and isinstance(value, str) and kind is not str:
            return _from_text(value, kind, label)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value), None
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            return value, None
        return value, f"expected {label}, got {_describe(value)}"

    return check


def _from_text(value: str, kind: type, label: str) -> tuple[object, str | None]:
    if kind is bool:
        lowered = value.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True, None
        if lowered in ("false", "0", "no", "off"):
            return False, None
        return value, f"expected {label}, got {value!r}"
    try:
        return kind(value), None
    except ValueError:
        return value, f"expected {label}, got {value!r}"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _any(value: object, textual: bool) -> tuple[object, str | None]:
    return value, None


def _list_of(item: Checker | None, label: str) -> Checker:
    def check(value: object, textual: bool) -> tuple[object, str | None]:
        if not isinstance(value, list):
            return value, f"expected {label}, got {_describe(value)}"
        if item is None:
            return value, None
        out = []
        for index, element in enumerate(value):
            converted, problem = item(element, False)
            if problem:
                return value, f"item {index}: {problem}"
            out.append(converted)
        return out, None

    return check


def _dict_of(item: Checker | None, label: str) -> Checker:
    def check(value: object, textual: bool) -> tuple[object, str | None]:
        if not isinstance(value, dict):
            return value, f"expected {label}, got {_describe(value)}"
        if item is None:
            return value, None
        out: dict[object, object] = {}
        for key, element in value.items():
            converted, problem = item(element, False)
            if problem:
                return value, f"key {key!r}: {problem}"
            out[key] = converted
        return out, None

    return check


def _union(options: list[tuple[Checker, str]], label: str) -> Checker:
    def check(value: object, textual: bool) -> tuple[object, str | None]:
        if value is None and any(name == "None" for _, name in options):
            return None, None
        for checker, name in options:
            if name == "None":
                continue
            converted, problem = checker(value, textual)
            if problem is None:
                return converted, None
        return value, f"expected {label}, got {_describe(value)}"

    return check


def _none(value: object, textual: bool) -> tuple[object, str | None]:
    return value, None if value is None else f"expected null, got {_describe(value)}"


_SCALARS: dict[object, tuple[type, str]] = {
    str: (str, "str"),
    int: (int, "int"),
    float: (float, "float"),
    bool: (bool, "bool"),
}


def checker_for(annotation: object) -> tuple[Checker, str]:
    """A checker and a readable type label for an annotation; raises ``TypeError`` for unsupported ones."""
    if annotation is Any or annotation is object:
        return _any, "Any"
    if annotation is None or annotation is type(None):
        return _none, "None"
    if annotation in _SCALARS:
        kind, label = _SCALARS[annotation]
        return _scalar(kind, label), label
    if annotation is list:
        return _list_of(None, "list"), "list"
    if annotation is dict:
        return _dict_of(None, "dict"), "dict"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list:
        item, item_label = checker_for(args[0]) if args else (None, "Any")
        label = f"list[{item_label}]"
        return _list_of(item, label), label
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError("dict keys must be str (JSON objects have string keys)")
        item, item_label = checker_for(args[1]) if len(args) == 2 else (None, "Any")
        label = f"dict[str, {item_label}]"
        return _dict_of(item, label), label
    if origin is typing.Union or origin is types.UnionType:
        options = [checker_for(arg) for arg in args]
        label = " | ".join(name for _, name in options)
        return _union(options, label), label
    raise TypeError(f"unsupported field type {annotation!r}")


def fields_of(declaration: type | None, namespace: Mapping[str, object]) -> list[FieldSpec]:
    """The fields a nested ``Input`` or ``Output`` class declares; raises ``TypeError`` naming the bad field."""
    if declaration is None:
        return []
    try:
        hints = typing.get_type_hints(declaration, globalns=dict(namespace))
    except Exception as exc:
        raise TypeError(f"cannot resolve the annotations of {declaration.__qualname__}: {exc}") from exc
    specs = []
    for name, annotation in hints.items():
        if name.startswith("_"):
            continue
        try:
            check, label = checker_for(annotation)
        except TypeError as exc:
            raise TypeError(f"{declaration.__qualname__}.{name}: {exc}") from None
        default = getattr(declaration, name, _MISSING)
        specs.append(FieldSpec(name, label, default is _MISSING, None if default is _MISSING else default, check))
    return specs


def validate(
    specs: list[FieldSpec],
    payload: object,
    *,
    textual: Mapping[str, str] | None = None,
    textual_where: Mapping[str, str] | None = None,
    allow_extra: bool = True,
) -> tuple[dict[str, object], list[FieldProblem]]:
    """Check ``payload`` (and text values such as path parameters) against ``specs``.

    Returns the converted input (defaults filled in) and every problem found, not only the first.
    """
    problems: list[FieldProblem] = []
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        return {}, [FieldProblem("(payload)", f"expected a JSON object, got {_describe(payload)}")]
    textual = textual or {}
    where_of = textual_where or {}
    out: dict[str, object] = dict(payload) if allow_extra else {}
    for spec in specs:
        if spec.name in payload:
            value, is_text, where = payload[spec.name], False, "payload"
        elif spec.name in textual:
            value, is_text, where = textual[spec.name], True, where_of.get(spec.name, "query")
        elif spec.required:
            problems.append(FieldProblem(spec.name, "required field is missing"))
            continue
        else:
            out[spec.name] = spec.default
            continue
        converted, problem = spec.check(value, is_text)
        if problem:
            problems.append(FieldProblem(spec.name, problem, where))
        else:
            out[spec.name] = converted
    return out, problems
