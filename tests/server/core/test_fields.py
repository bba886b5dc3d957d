"""Field declarations: checkers per annotation, text conversion, validation and resolving annotations; pydantic
models, and the problems both kinds of declaration give."""

from __future__ import annotations

import textwrap
import typing
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from splice.server.core.errors import FieldProblem
from splice.server.core.fields import Declared, FieldSpec, checker_for, declare, fields_of, render, validate

# (annotation, label, value, converted value or None when refused); values arrive as JSON, not text.
JSON_CASES: list[tuple[object, str, object, object]] = [
    (str, "str", "x", "x"),
    (str, "str", 1, None),
    (int, "int", 3, 3),
    (int, "int", True, None),
    (int, "int", 3.0, None),
    (int, "int", "3", None),
    (float, "float", 2.5, 2.5),
    (float, "float", 2, 2.0),
    (float, "float", False, None),
    (bool, "bool", True, True),
    (bool, "bool", 1, None),
    (Any, "Any", {"a": [1]}, {"a": [1]}),
    (object, "Any", None, None),
    (list, "list", [1, "a"], [1, "a"]),
    (list, "list", (1,), None),
    (dict, "dict", {"a": 1}, {"a": 1}),
    (dict, "dict", [], None),
    (list[int], "list[int]", [1, 2], [1, 2]),
    (list[int], "list[int]", [1, "2"], None),
    (list[float], "list[float]", [1, 2.5], [1.0, 2.5]),
    (typing.List[str], "list[str]", ["a"], ["a"]),  # noqa: UP006 - the typing alias must work too
    (dict[str, int], "dict[str, int]", {"a": 1}, {"a": 1}),
    (dict[str, int], "dict[str, int]", {"a": "1"}, None),
    (dict[str, float], "dict[str, float]", {"a": 1}, {"a": 1.0}),
    (dict[str, list[int]], "dict[str, list[int]]", {"a": [1], "b": []}, {"a": [1], "b": []}),
    (list[dict[str, bool]], "list[dict[str, bool]]", [{"x": True}], [{"x": True}]),
    (int | None, "int | None", 4, 4),
    (int | None, "int | None", "4", None),
    (typing.Optional[int], "int | None", 4, 4),  # noqa: UP045 - the typing spelling must work too
    (int | str, "int | str", "a", "a"),
    (int | str, "int | str", 2.5, None),
    (list[int] | None, "list[int] | None", [1], [1]),
]


@pytest.mark.parametrize(("annotation", "label", "value", "expected"), JSON_CASES)
def test_checker_for_json_values(annotation: object, label: str, value: object, expected: object) -> None:
    check, got_label = checker_for(annotation)
    assert got_label == label
    converted, problem = check(value, False)
    if expected is None and value is not None:
        assert problem is not None
        assert problem.startswith(("expected", "item", "key"))
    else:
        assert problem is None
        assert converted == expected
        assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "value", "expected"),
    [
        (None, None, None),
        (int | None, None, None),
        (Any, None, None),
    ],
)
def test_null_where_allowed(annotation: object, value: object, expected: object) -> None:
    assert checker_for(annotation)[0](value, False) == (expected, None)


@pytest.mark.parametrize(
    ("annotation", "problem"),
    [
        (int, "expected int, got null"),
        (None, "expected null, got int"),
        (list[int], "expected list[int], got null"),
        (int | str, "expected int | str, got null"),
    ],
)
def test_null_where_refused(annotation: object, problem: str) -> None:
    value = 1 if annotation is None else None
    assert checker_for(annotation)[0](value, False)[1] == problem


@pytest.mark.parametrize(
    ("annotation", "text", "expected"),
    [
        (int, "42", 42),
        (int, "-7", -7),
        (float, "2.5", 2.5),
        (float, "3", 3.0),
        (str, "42", "42"),
        (bool, "true", True),
        (bool, "Yes", True),
        (bool, "1", True),
        (bool, "off", False),
        (bool, "FALSE", False),
        (int | None, "5", 5),
        (int | float, "1.5", 1.5),
        (bool | None, "no", False),
    ],
)
def test_text_conversion(annotation: object, text: str, expected: object) -> None:
    converted, problem = checker_for(annotation)[0](text, True)
    assert problem is None
    assert converted == expected
    assert type(converted) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "text", "problem"),
    [
        (int, "4.5", "expected int, got '4.5'"),
        (int, "", "expected int, got ''"),
        (float, "abc", "expected float, got 'abc'"),
        (bool, "maybe", "expected bool, got 'maybe'"),
        (int | None, "x", "expected int | None, got string"),
    ],
)
def test_text_conversion_refused(annotation: object, text: str, problem: str) -> None:
    assert checker_for(annotation)[0](text, True) == (text, problem)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (set[int], "unsupported field type"),
        (tuple, "unsupported field type"),
        (bytes, "unsupported field type"),
        ("int", "unsupported field type"),
        (dict[int, str], "dict keys must be str"),
        (list[bytes], "unsupported field type"),
        (int | bytes, "unsupported field type"),
    ],
)
def test_unsupported_annotations(annotation: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        checker_for(annotation)


def spec(name: str, annotation: object, default: object = ...) -> FieldSpec:
    check, label = checker_for(annotation)
    return FieldSpec(name, label, default is ..., None if default is ... else default, check)


SPECS = [spec("id", int), spec("qty", int), spec("note", str | None, None), spec("express", bool, False)]


@pytest.mark.parametrize(
    ("payload", "textual", "expected", "problems"),
    [
        ({"id": 1, "qty": 2}, {}, {"id": 1, "qty": 2, "note": None, "express": False}, []),
        (
            {"id": 1, "qty": 2, "extra": "kept"},
            {},
            {"id": 1, "qty": 2, "note": None, "express": False, "extra": "kept"},
            [],
        ),
        (None, {"id": "7", "qty": "1", "express": "on"}, {"id": 7, "qty": 1, "note": None, "express": True}, []),
        ({"id": 1, "qty": 2}, {"id": "9"}, {"id": 1, "qty": 2, "note": None, "express": False}, []),  # payload first
        (
            {"id": "x", "express": "yes"},
            {},
            None,
            [
                FieldProblem("id", "expected int, got string"),
                FieldProblem("qty", "required field is missing"),
                FieldProblem("express", "expected bool, got string"),
            ],
        ),
        (
            {"qty": 1},
            {"id": "abc"},
            None,
            [FieldProblem("id", "expected int, got 'abc'", "path")],
        ),
        ([1, 2], {}, {}, [FieldProblem("(payload)", "expected a JSON object, got array")]),
    ],
)
def test_validate(
    payload: object, textual: dict[str, str], expected: dict[str, object] | None, problems: list[FieldProblem]
) -> None:
    out, found = validate(SPECS, payload, textual=textual, textual_where={"id": "path"})
    assert found == problems
    if expected is not None:
        assert out == expected


def test_validate_without_extra_and_textual_where_defaults_to_query() -> None:
    out, found = validate(SPECS, {"id": 1, "extra": 1}, textual={"qty": "z"}, allow_extra=False)
    assert found == [FieldProblem("qty", "expected int, got 'z'", "query")]
    assert out == {"id": 1, "note": None, "express": False}


# A module namespace, as a deployed module would have it: ``Money`` is only resolvable through it.
Money = float


class Order:
    id: int
    items: list[str]
    total: Money = 0.0
    tags: dict[str, int] | None = None
    _private: int = 0


class Nothing:
    pass


class Bad:
    id: int
    when: set[int]


class Unresolvable:
    id: NoSuchType  # noqa: F821


def test_fields_of_resolves_string_annotations_against_the_namespace() -> None:
    assert Order.__annotations__["total"] == "Money"  # `from __future__ import annotations` is in force
    specs = fields_of(Order, {"Money": float, "int": int})
    assert [(s.name, s.type, s.required, s.default) for s in specs] == [
        ("id", "int", True, None),
        ("items", "list[str]", True, None),
        ("total", "float", False, 0.0),
        ("tags", "dict[str, int] | None", False, None),
    ]
    assert [s.as_dict() for s in specs][2:] == [
        {"name": "total", "type": "float", "required": False, "default": 0.0},
        {"name": "tags", "type": "dict[str, int] | None", "required": False, "default": None},
    ]


@pytest.mark.parametrize(
    ("declaration", "namespace", "message"),
    [
        (Bad, {}, r"^Bad\.when: unsupported field type"),
        (Unresolvable, {}, r"^cannot resolve the annotations of Unresolvable: .*NoSuchType"),
        (Order, {}, r"^cannot resolve the annotations of Order: .*Money"),
    ],
)
def test_fields_of_refuses(declaration: type, namespace: dict[str, object], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        fields_of(declaration, namespace)


@pytest.mark.parametrize("declaration", [None, Nothing])
def test_fields_of_nothing_declared(declaration: type | None) -> None:
    assert fields_of(declaration, {}) == []


# -- pydantic models, and the one validator both kinds of declaration share ----------------------------------------


class Line(BaseModel):
    sku: str
    qty: Annotated[int, Field(gt=0)]


class OrderIn(BaseModel):
    customer: int
    lines: list[Line]
    kind: Literal["web", "phone"] = "web"
    due: datetime | None = None
    ref: UUID | None = None
    tags: list[str] = Field(default_factory=list)
    client_ref: str = Field("", alias="clientRef")


def declared(declaration: type) -> Declared:
    found = declare(declaration, globals())
    assert found is not None
    return found


def test_a_pydantic_model_lists_its_fields() -> None:
    fields = [f.as_dict() for f in declared(OrderIn).fields]
    assert fields == [
        {"name": "customer", "type": "int", "required": True},
        {"name": "lines", "type": "list[Line]", "required": True},
        {"name": "kind", "type": "Literal['web', 'phone']", "required": False, "default": "web"},
        {"name": "due", "type": "datetime | None", "required": False, "default": None},
        {"name": "ref", "type": "UUID | None", "required": False, "default": None},
        {"name": "tags", "type": "list[str]", "required": False},  # what a factory makes is not told
        {"name": "clientRef", "type": "str", "required": False, "default": ""},  # callers send the alias
    ]
    schema = declared(OrderIn).schema
    assert schema["required"] == ["customer", "lines"]
    assert schema["properties"]["lines"]["items"] == {"$ref": "#/$defs/Line"}
    assert schema["$defs"]["Line"]["properties"]["qty"]["exclusiveMinimum"] == 0


GOOD = {"customer": 1, "lines": [{"sku": "a", "qty": 1}]}


@pytest.mark.parametrize(
    ("payload", "textual", "problems"),
    [
        (GOOD, {}, []),
        ({**GOOD, "customer": "7"}, {}, []),  # a pydantic model's own (lax) rules
        (
            {"customer": "x", "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": "many"}, {"qty": 0}]},
            {},
            [
                FieldProblem("customer", "expected int, got string"),
                FieldProblem("lines[1].qty", "expected int, got string"),
                FieldProblem("lines[2].sku", "required field is missing"),
                FieldProblem("lines[2].qty", "Input should be greater than 0"),
            ],
        ),
        ({**GOOD, "kind": "fax"}, {}, [FieldProblem("kind", "Input should be 'web' or 'phone'")]),
        ({**GOOD, "due": "soon"}, {}, [FieldProblem("due", "expected datetime | None, got string")]),
        ({**GOOD, "lines": {"sku": "a"}}, {}, [FieldProblem("lines", "expected list[Line], got object")]),
        ({**GOOD, "lines": ["a"]}, {}, [FieldProblem("lines[0]", "expected Line, got string")]),
        ({"lines": GOOD["lines"]}, {"customer": "12"}, []),
        (
            {"lines": GOOD["lines"]},
            {"customer": "twelve"},
            [FieldProblem("customer", "expected int, got 'twelve'", "path")],
        ),
        ({"lines": GOOD["lines"]}, {"customer": "5", "due": "2026-12-24T09:00:00"}, []),
        (
            {"lines": GOOD["lines"]},
            {"customer": "5", "due": "Christmas"},
            [FieldProblem("due", "expected datetime | None, got string", "query")],
        ),
        ("text", {}, [FieldProblem("(payload)", "expected a JSON object, got string")]),
    ],
)
def test_checking_a_pydantic_model(payload: object, textual: dict[str, str], problems: list[FieldProblem]) -> None:
    instance, found = declared(OrderIn).check(payload, textual, {"customer": "path"})
    assert found == problems
    assert (instance is None) == bool(problems)
    if instance is not None:
        assert isinstance(instance, OrderIn)


def test_a_checked_model_gives_values_by_attribute_and_keeps_its_instance() -> None:
    order = declared(OrderIn)
    instance, _ = order.check({**GOOD, "clientRef": "r-1", "ignored": 1})
    assert instance is not None
    values = order.values(instance)
    assert list(values) == ["customer", "lines", "kind", "due", "ref", "tags", "client_ref"]
    assert values["client_ref"] == "r-1"
    assert values["lines"] == [Line(sku="a", qty=1)]
    again, problems = order.check(instance)  # an instance as the payload (a service invoking another with one)
    assert problems == []
    assert again == instance


class Strict(BaseModel):
    model_config = ConfigDict(strict=True)

    n: int
    flag: bool = False

    @model_validator(mode="after")
    def positive(self) -> Strict:
        if self.n < 0:
            raise ValueError("n must not be negative")
        return self


@pytest.mark.parametrize(
    ("payload", "textual", "problems"),
    [
        ({"n": 1}, {}, []),
        ({"n": "1"}, {}, [FieldProblem("n", "expected int, got string")]),  # strict, as the model says
        ({}, {"n": "1", "flag": "on"}, []),  # text from the path or the query is still converted
        ({"n": -1}, {}, [FieldProblem("(payload)", "Value error, n must not be negative")]),
    ],
)
def test_a_strict_model_with_a_model_validator(
    payload: object, textual: dict[str, str], problems: list[FieldProblem]
) -> None:
    assert declared(Strict).check(payload, textual)[1] == problems


class Clashing:
    json: str
    schema: int = 0
    model_config: bool = False


def test_a_plain_class_may_use_names_pydantic_keeps_for_itself() -> None:
    clashing = declared(Clashing)
    instance, problems = clashing.check({"json": "j", "model_config": True, "more": 1})
    assert problems == []
    assert instance is not None
    assert clashing.values(instance) == {"json": "j", "schema": 0, "model_config": True, "more": 1}
    assert list(clashing.schema["properties"]) == ["json", "schema", "model_config"]
    assert clashing.schema["title"] == "Clashing"


def test_a_model_refering_to_one_defined_later_in_the_service_is_resolved_at_deploy() -> None:
    source = textwrap.dedent(
        """
        from __future__ import annotations
        from pydantic import BaseModel
        from splice.server import Service

        class Create(Service):
            class Input(BaseModel):
                part: Part

            class Part(BaseModel):
                id: int

            def handle(self):
                pass

        class Broken(Service):
            class Input(BaseModel):
                part: Nowhere

            def handle(self):
                pass
        """
    )
    namespace: dict[str, Any] = {"__name__": "shop.parts"}
    exec(compile(source, "shop/parts.py", "exec"), namespace)
    found = declare(namespace["Create"].Input, namespace, owner=namespace["Create"])
    assert found is not None
    assert found.check({"part": {"id": "x"}})[1] == [FieldProblem("part.id", "expected int, got string")]
    with pytest.raises(TypeError, match=r"^cannot resolve the annotations of Broken\.Input: .*Nowhere"):
        declare(namespace["Broken"].Input, namespace, owner=namespace["Broken"])


@pytest.mark.parametrize(
    ("path", "text"),
    [((), ""), (("a",), "a"), (("items", 1, "qty"), "items[1].qty"), ((0, "x", 2, 3), "[0].x[2][3]")],
)
def test_render(path: tuple[int | str, ...], text: str) -> None:
    assert render(path) == text
