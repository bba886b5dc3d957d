"""Declared input and output of services, checked by pydantic.

A service declares its fields with a nested ``Input`` (and ``Output``): a pydantic model, or a plain class
whose annotations are the fields, from which Splice builds the pydantic model::

    class CreateOrder(Service):
        class Input:
            customer_id: int
            items: list[str]
            note: str | None = None     # a default makes a field optional

        class Output(BaseModel):
            order_id: int

A plain class takes ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``Any``, ``list[T]``,
``dict[str, T]`` and unions such as ``T | None``, and its JSON values must have the declared type already
(``"3"`` is not an ``int``). A pydantic model takes whatever pydantic does, by pydantic's own rules (lax unless
it says ``strict``). Either way, values that arrive as text (path parameters and query strings) are converted
to the declared type, and a problem names its field by its path in the payload: ``items[1].qty``.

pydantic is imported when the first declaration is read, not with ``splice.server``: the CLI, the language
server and a server whose services declare nothing never pay for it.
"""

from __future__ import annotations

import functools
import sys
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import FieldProblem

if TYPE_CHECKING:
    from pydantic import BaseModel, TypeAdapter, ValidationError
    from pydantic_core import ErrorDetails

_MISSING: Any = object()
_SCALARS: dict[object, str] = {str: "str", int: "int", float: "float", bool: "bool"}
_EXPECTED = {
    "int_type": "int",
    "int_parsing": "int",
    "int_from_float": "int",
    "float_type": "float",
    "float_parsing": "float",
    "string_type": "str",
    "bool_type": "bool",
    "bool_parsing": "bool",
    "list_type": "list",
    "dict_type": "dict",
    "none_required": "null",
    "model_attributes_type": "object",
    "datetime_type": "datetime",
    "datetime_parsing": "datetime",
    "datetime_from_date_parsing": "datetime",
    "date_type": "date",
    "date_parsing": "date",
    "date_from_datetime_parsing": "date",
    "time_type": "time",
    "time_parsing": "time",
    "uuid_type": "UUID",
    "uuid_parsing": "UUID",
    "decimal_type": "Decimal",
    "decimal_parsing": "Decimal",
}
"""pydantic's error types that mean "not of this type", and the type they name."""

Loc = tuple[int | str, ...]


def is_model(value: object) -> bool:
    """Whether ``value`` is a pydantic model class (pydantic need not be imported for the answer to be no)."""
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(value, type) and issubclass(value, main.BaseModel)


def is_model_instance(value: object) -> bool:
    main = sys.modules.get("pydantic.main")
    return main is not None and isinstance(value, main.BaseModel)


def type_label(annotation: object, *, plain: bool = True) -> str:
    """A readable name of a field type. For a plain class (``plain``), ``TypeError`` when Splice does not take it."""
    if annotation is Any or annotation is object:
        return "Any"
    if annotation is None or annotation is type(None):
        return "None"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if annotation is list or annotation is dict:
        return annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list:
        return f"list[{type_label(args[0], plain=plain) if args else 'Any'}]"
    if origin is dict:
        if args and args[0] is not str and plain:
            raise TypeError("dict keys must be str (JSON objects have string keys)")
        key = type_label(args[0], plain=plain) if args else "str"
        return f"dict[{key}, {type_label(args[1], plain=plain) if len(args) == 2 else 'Any'}]"
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_label(arg, plain=plain) for arg in args)
    if plain:
        raise TypeError(f"unsupported field type {annotation!r}")
    if origin is typing.Annotated:
        return type_label(args[0], plain=False)
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


class Checker:
    """Checks one value against one annotation: JSON values strictly (when ``strict``), text values converted."""

    def __init__(self, annotation: object, label: str, strict: bool = True) -> None:
        self.annotation: Any = Any if annotation is object else annotation
        self.label = label
        self.strict = strict

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any]:
        from pydantic import TypeAdapter

        return TypeAdapter(self.annotation)

    def __call__(self, value: object, textual: bool) -> tuple[object, str | None]:
        """The converted value and ``None``, or the value as given and what is wrong with it."""
        from pydantic import ValidationError

        try:
            return self.adapter.validate_python(value, strict=self.strict and not textual), None
        except ValidationError as exc:
            groups = _grouped(exc, value)
            path, errors = next(((p, e) for p, e in groups.items() if not p), next(iter(groups.items())))
            if not path:
                return value, _message(errors, self.label, _got(value, self.label, textual))
            where = f"item {path[0]}" if isinstance(path[0], int) else f"key {path[0]!r}"
            return value, f"{where}{render(path[1:], nested=True)}: {_message(errors, None, _got(errors[0]['input']))}"


@dataclass(frozen=True)
class FieldSpec:
    """One declared field, as listed to callers: ``name`` is the key a payload carries."""

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


@dataclass(frozen=True, eq=False)
class Declared:
    """A declared ``Input`` or ``Output``: the pydantic model that checks it and the fields it lists."""

    fields: tuple[FieldSpec, ...]
    attributes: tuple[str, ...]
    """The model's attribute of each field, in the order of ``fields``."""
    title: str
    given: type[BaseModel] | None = None
    """The pydantic model the service declared; ``None`` for a plain annotated class."""
    mode: Literal["validation", "serialization"] = "validation"
    """How its JSON schema is written: what it accepts (an input) or what it produces (an output)."""

    @property
    def plain(self) -> bool:
        """Declared as a plain annotated class: JSON values must have the declared type already."""
        return self.given is None

    @functools.cached_property
    def model(self) -> type[BaseModel]:
        """The model that checks: the declared one, or for a plain class one built at its first use (its field
        types were checked when it was declared; building costs about a millisecond, at every server start)."""
        return self.given if self.given is not None else _plain_model(self.title, self.fields)

    @functools.cached_property
    def keys(self) -> tuple[str, ...]:
        """The names ``self.request.input`` gives the fields: the payload keys of a plain class, else attributes."""
        return tuple(spec.name for spec in self.fields) if self.plain else self.attributes

    @functools.cached_property
    def schema(self) -> dict[str, Any]:
        """The JSON schema of what is declared (nested models under ``$defs``)."""
        return self.json_schema()

    def json_schema(self, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
        return self.model.model_json_schema(ref_template=ref_template, mode=self.mode)

    def values(self, instance: BaseModel) -> dict[str, Any]:
        """The fields of a checked ``instance`` by ``keys``, then any extra keys it kept."""
        out = {key: getattr(instance, attribute) for key, attribute in zip(self.keys, self.attributes, strict=True)}
        return out | (instance.model_extra or {})

    def check(
        self, payload: object, textual: Mapping[str, str] | None = None, where: Mapping[str, str] | None = None
    ) -> tuple[BaseModel | None, list[FieldProblem]]:
        """The checked model instance, or ``None`` and every problem found (not only the first).

        ``textual``: values that arrived as text (path parameters, query), used for fields the payload lacks;
        ``where``: where each came from (``query`` unless said).
        """
        instance, _, problems = self._run(payload, textual or {}, where or {})
        return instance, problems

    def _run(
        self, payload: object, textual: Mapping[str, str], where: Mapping[str, str]
    ) -> tuple[BaseModel | None, dict[str, Any] | None, list[FieldProblem]]:
        """The instance (``None`` with problems), the data checked (``None``: not a JSON object), the problems."""
        from pydantic import ValidationError

        if is_model_instance(payload):
            payload = typing.cast("BaseModel", payload).model_dump(by_alias=True)
        if payload is None:
            payload = {}
        if not isinstance(payload, Mapping):
            return None, None, [FieldProblem("(payload)", f"expected a JSON object, got {_describe(payload)}")]
        data = dict(payload)
        problems: list[FieldProblem] = []
        sources: dict[str, str] = {}
        for spec in self.fields:
            if spec.name in data or spec.name not in textual:
                continue
            sources[spec.name] = where.get(spec.name, "query")
            converted, problem = spec.check(textual[spec.name], True)
            if problem:
                problems.append(FieldProblem(spec.name, problem, sources[spec.name]))
            else:
                data[spec.name] = converted
        try:
            instance = self.model.model_validate(data)
        except ValidationError as exc:
            reported = {p.field for p in problems}
            problems += [p for p in self._problems(exc, data, sources) if _top(p.field) not in reported]
            instance = None
        order = {spec.name: index for index, spec in enumerate(self.fields)}
        problems.sort(key=lambda p: order.get(_top(p.field), len(order)))
        return (None if problems else instance), data, problems

    def _problems(
        self, exc: ValidationError, data: Mapping[str, Any], sources: Mapping[str, str]
    ) -> list[FieldProblem]:
        by_name = {spec.name: spec for spec in self.fields}
        out = []
        for path, errors in _grouped(exc, data).items():
            top = path[0] if path else ""
            spec = by_name.get(str(top)) if len(path) == 1 else None
            label = spec.type if spec is not None else None
            got = _got(errors[0]["input"], label, top in sources)
            out.append(
                FieldProblem(
                    render(path) or "(payload)", _message(errors, label, got), sources.get(str(top), "payload")
                )
            )
        return out


def _top(field: str) -> str:
    return field.split(".")[0].split("[")[0]


def _json_safe(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _describe(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), type(value).__name__)


def _got(value: object, label: str | None = None, textual: bool = False) -> str:
    """What a refused value was: text for a scalar field is quoted as it came (``'abc'``), else its JSON kind."""
    if textual and isinstance(value, str) and label in _SCALARS.values():
        return repr(value)
    return _describe(value)


def render(path: Sequence[int | str], nested: bool = False, skip: Collection[str] = ()) -> str:
    """``('items', 1, 'qty')`` -> ``items[1].qty`` (``.items[1].qty`` when ``nested``); names in ``skip`` (a tagged
    union's tags) are left out."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in skip:
            out += f".{part}" if out or nested else part
    return out


def _walk(loc: Loc, data: object, missing: bool) -> Loc:
    """The part of pydantic's ``loc`` that addresses ``data`` (pydantic adds the names of union members and such)."""
    path: list[int | str] = []
    node = data
    for position, part in enumerate(loc):
        if _holds(node, part):
            node = node[part]  # type: ignore[index]
        elif not (missing and position == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _holds(node: object, part: int | str) -> bool:
    if isinstance(part, int) and isinstance(node, list | tuple):
        return -len(node) <= part < len(node)
    return isinstance(part, str) and isinstance(node, Mapping) and part in node


def _grouped(exc: ValidationError, data: object) -> dict[Loc, list[ErrorDetails]]:
    """pydantic's errors by the place in ``data`` they are about (a union's members' errors share one)."""
    groups: dict[Loc, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        groups.setdefault(_walk(tuple(error["loc"]), data, error["type"] == "missing"), []).append(error)
    return groups


def _expected(error: ErrorDetails) -> str | None:
    if error["type"] == "model_type":
        return str((error.get("ctx") or {}).get("class_name", "object"))
    return _EXPECTED.get(error["type"])


def _message(errors: Sequence[ErrorDetails], label: str | None, got: str) -> str:
    """One message for the errors about one place; ``label``: the declared type, when the place is a whole field."""
    if any(error["type"] == "missing" for error in errors):
        return "required field is missing"
    expected = [_expected(error) for error in errors]
    if all(expected):
        name = ("null" if label == "None" else label) or " | ".join(dict.fromkeys(str(e) for e in expected))
        return f"expected {name}, got {got}"
    return "; ".join(dict.fromkeys(error["msg"] for error in errors))


def checker_for(annotation: object) -> tuple[Checker, str]:
    """A checker and a readable type label for a plain class's annotation; ``TypeError`` for unsupported ones."""
    label = type_label(annotation)
    return Checker(annotation, label), label


def declare(
    declaration: type | None,
    namespace: Mapping[str, object],
    *,
    output: bool = False,
    owner: type | None = None,
) -> Declared | None:
    """What a nested ``Input``/``Output`` declares (``None``: nothing); ``TypeError`` naming what is wrong.

    ``namespace``: the module's, to resolve annotations written as text; ``owner``: the service class, whose
    body may define models the declaration refers to.
    """
    if declaration is None:
        return None
    mode: Literal["validation", "serialization"] = "serialization" if output else "validation"
    if is_model(declaration):
        return _from_model(typing.cast("type[BaseModel]", declaration), namespace, owner, mode)
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
    if not specs:
        return None
    return _plain(declaration.__qualname__, specs, mode)


def _plain(title: str, specs: Sequence[FieldSpec], mode: Literal["validation", "serialization"]) -> Declared:
    return Declared(tuple(specs), tuple(f"f{index}" for index in range(len(specs))), title, mode=mode)


def _plain_model(title: str, specs: Sequence[FieldSpec]) -> type[BaseModel]:
    """The model of a plain class. Its attributes are ``f0``, ``f1``...; the fields' names are aliases, so a field
    may have any name (``json``, ``schema``, ``model_config``) without meeting pydantic's own."""
    from pydantic import ConfigDict, Field, create_model

    definitions: dict[str, Any] = {
        f"f{index}": (spec.check.annotation, Field(... if spec.required else spec.default, alias=spec.name))
        for index, spec in enumerate(specs)
    }
    return create_model("Input", __config__=ConfigDict(strict=True, extra="allow", title=title), **definitions)


def _from_model(
    model: type[BaseModel],
    namespace: Mapping[str, object],
    owner: type | None,
    mode: Literal["validation", "serialization"],
) -> Declared:
    if not model.__pydantic_complete__:
        # A model that refers to a class defined after it, or in the service's body: resolve it now, so that a
        # deployment is refused rather than its first call failing.
        names = {**namespace, **(vars(owner) if owner is not None else {})}
        try:
            model.model_rebuild(_types_namespace=names)
        except Exception as exc:
            raise TypeError(f"cannot resolve the annotations of {model.__qualname__}: {exc}") from exc
    specs = []
    for name, info in model.model_fields.items():
        label = type_label(info.annotation, plain=False)
        required = info.is_required()
        # a default made by a factory is not told (it may differ at every call)
        default = _MISSING if info.default_factory is not None else None if required else info.default
        specs.append(FieldSpec(info.alias or name, label, required, default, Checker(info.annotation, label, False)))
    return Declared(tuple(specs), tuple(model.model_fields), model.__qualname__, model, mode)


def fields_of(declaration: type | None, namespace: Mapping[str, object]) -> list[FieldSpec]:
    """The fields a nested ``Input`` or ``Output`` class declares; raises ``TypeError`` naming the bad field."""
    declared = declare(declaration, namespace)
    return list(declared.fields) if declared is not None else []


def validate(
    declared: Declared | Sequence[FieldSpec],
    payload: object,
    *,
    textual: Mapping[str, str] | None = None,
    textual_where: Mapping[str, str] | None = None,
    allow_extra: bool = True,
) -> tuple[dict[str, object], list[FieldProblem]]:
    """Check ``payload`` (and text values such as path parameters) as a ``dict``: the converted input (defaults
    filled in) and every problem found. With problems, the input holds the fields that had none, as given."""
    if not isinstance(declared, Declared):
        declared = _plain("Input", declared, "validation")
    instance, data, problems = declared._run(payload, textual or {}, textual_where or {})
    names = [spec.name for spec in declared.fields]
    if data is None:
        return {}, problems
    if instance is not None:
        out = declared.values(instance)
    else:
        bad = {_top(p.field) for p in problems}
        out = {k: v for k, v in data.items() if k not in bad}
        for spec in declared.fields:
            if spec.name not in bad and spec.name not in out and not spec.required and spec.default is not _MISSING:
                out[spec.name] = spec.default
    return (out if allow_extra else {k: v for k, v in out.items() if k in names}), problems
