"""The workspace index: services, fields, hooks, invokes and syntax errors read with ``ast``, positions in UTF-16."""

from __future__ import annotations

import pytest

from splice.lsp.index import Field, Range, WorkspaceIndex, parse_module, str_index, utf16_column

ORDERS = '''from splice.server import Service


class CreateOrder(Service):
    """Creates an order."""

    class Input:
        customer_id: int
        items: list[str]
        note: str | None = None

    class Output:
        order_id: int

    async def handle(self) -> None:
        await self.ainvoke("crm.get-customer", {"id": 1, "name": "x"})
'''


@pytest.mark.parametrize(
    ("line", "index", "column"),
    [
        ("abc", 2, 2),
        ("é = 1", 1, 1),
        ("😀x", 1, 2),
        ("a😀😀b", 3, 5),
    ],
)
def test_utf16_columns_round_trip(line: str, index: int, column: int) -> None:
    assert utf16_column(line, index) == column
    assert str_index(line, column) == index


def test_a_service_with_its_fields_docstring_and_hooks() -> None:
    module = parse_module("shop/orders.py", ORDERS)
    assert module.module == "shop.orders"
    assert module.syntax_error is None
    cls = next(c for c in module.classes if c.name == "CreateOrder")
    assert cls.doc == "Creates an order."
    assert cls.range == Range(3, 6, 3, 17)
    assert cls.input == (
        Field("customer_id", "int", True),
        Field("items", "list[str]", True),
        Field("note", "str | None", False, "None"),
    )
    assert cls.output == (Field("order_id", "int", True),)
    assert cls.hooks == {"handle"}
    assert cls.is_async
    assert cls.hook_problems == ()


def test_an_invoke_call_with_exact_ranges() -> None:
    (call,) = parse_module("shop/orders.py", ORDERS).invokes
    assert call.method == "ainvoke"
    assert call.service == "crm.get-customer"
    assert call.range == Range(15, 28, 15, 44)
    assert [(k.name, k.range) for k in call.keys or ()] == [
        ("id", Range(15, 49, 15, 51)),
        ("name", Range(15, 58, 15, 62)),
    ]


@pytest.mark.parametrize(
    ("source", "service", "start", "end", "keys"),
    [
        ("self.invoke('a.b')", "a.b", 13, 16, None),
        ("self.invoke_async('a.b', payload={'k': 1})", "a.b", 19, 22, ["k"]),
        ("x = 'é'; self.invoke('ü.b', {'ä': 1})", "ü.b", 22, 25, ["ä"]),
        ("x = '😀'; self.invoke('a', {})", "a", 23, 24, []),
        ("self.invoke('a', {**other})", "a", 13, 14, None),
        ("self.invoke('a', data)", "a", 13, 14, None),
        ("self.invoke(r'''a''')", "a", 16, 17, None),
    ],
)
def test_invoke_calls(source: str, service: str, start: int, end: int, keys: list[str] | None) -> None:
    (call,) = parse_module("m.py", source + "\n").invokes
    assert (call.service, call.range.start, call.range.end) == (service, start, end)
    assert (None if call.keys is None else [k.name for k in call.keys]) == keys


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("    def handle(self): ...", None),
        ("    def handle(self, x=1, *args, **kw): ...", None),
        ("    def handle(self, x): ...", "handle() must take only self, it takes (self, x)"),
        ("    def handle(): ...", "handle() must take only self, it takes ()"),
        ("    def before_handle(self, *, k): ...", "before_handle() must take only self, it takes (self, k)"),
        ("    @staticmethod\n    def handle(): ...", "handle() must be a plain method taking only self"),
    ],
)
def test_hook_signatures(source: str, problem: str | None) -> None:
    module = parse_module("m.py", f"class S(Service):\n{source}\n")
    assert [message for message, _ in module.classes[0].hook_problems] == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("source", "message", "where"),
    [
        ("def f(:\n", "invalid syntax", Range(0, 6, 0, 7)),
        ("x = 'é' + (\n", "'(' was never closed", Range(0, 10, 0, 11)),
        ("x = '😀' $ 1\n", "invalid syntax", Range(0, 9, 0, 10)),
    ],
)
def test_syntax_errors(source: str, message: str, where: Range) -> None:
    problem = parse_module("m.py", source).syntax_error
    assert problem is not None
    assert problem.message == message
    assert problem.range == where


def test_names_inheritance_abstract_and_incremental_updates() -> None:
    index = WorkspaceIndex()
    index.update("base.py", "import splice.server\nclass Base(splice.server.Service):\n    abstract = True\n")
    index.update(
        "billing/__init__.py",
        "from base import Base\nclass GetHTTPStatus(Base):\n    def handle(self): ...\n"
        "class Named(GetHTTPStatus):\n    name = 'billing.named'\nclass Plain:\n    pass\n",
    )
    services = index.services()
    assert sorted(services) == ["billing.get-http-status", "billing.named"]
    named = services["billing.named"][0]
    assert named.has_handle
    assert named.module == "billing"
    assert named.path == "billing/__init__.py"
    index.update("billing/__init__.py", "class Other(Base):\n    pass\n")
    assert list(index.services()) == ["billing.other"]
    assert not index.services()["billing.other"][0].has_handle
    index.remove("base.py")
    assert index.services() == {}


def test_a_path_that_cannot_be_a_module_has_no_services() -> None:
    index = WorkspaceIndex()
    index.update("my-scripts/x.py", "from splice.server import Service\nclass A(Service):\n    def handle(self): ...\n")
    assert index.services() == {}


PYDANTIC = """from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from splice.server import Service
from shop.models import Remote


class Line(BaseModel):
    sku: str
    qty: int = Field(gt=0)


class Base(BaseModel):
    customer: int


class OrderIn(Base):
    model_config = ConfigDict(strict=True)
    registry: ClassVar[dict[str, int]] = {}
    lines: list[Line]
    note: str = Field("", max_length=80)
    code: str = Field(..., alias="orderCode")
    tags: list[str] = Field(default_factory=list)
    due: Annotated[str, Field(alias="dueDate")] = "today"
    kind: str = Field(default="web")
    rank: int = Field(ge=0)


class Create(Service):
    Input = OrderIn

    class Output(BaseModel):
        order: int

    def handle(self): ...


class Nested(Service):
    class Input(BaseModel):
        lines: list[Line]
        when: Annotated[str, Field(min_length=1)]

    def handle(self): ...


class Elsewhere(Service):
    class Input(Remote):
        extra: int

    def handle(self): ...


class Child(Nested):
    Input = Remote
"""


def test_pydantic_models_as_input_and_output() -> None:
    module = parse_module("shop/orders.py", PYDANTIC)
    classes = {c.name: c for c in module.classes}
    assert classes["Create"].input == (
        Field("customer", "int", True),  # inherited from a base model of the file, first
        Field("lines", "list[Line]", True),
        Field("note", "str", False, "''"),
        Field("orderCode", "str", True),  # callers send the alias; Field(...) is required
        Field("tags", "list[str]", False, "list()"),
        Field("dueDate", "str", False, "'today'"),
        Field("kind", "str", False, "'web'"),
        Field("rank", "int", True),  # Field() without a default is required
    )
    assert classes["Create"].output == (Field("order", "int", True),)
    assert classes["Create"].declares == {"Input", "Output"}
    assert classes["Nested"].input == (Field("lines", "list[Line]", True), Field("when", "str", True))
    # A base model from another file: its fields are not known here, so none are claimed
    assert classes["Elsewhere"].input is None
    assert classes["Elsewhere"].declares == {"Input"}
    services = WorkspaceIndex()
    services.update("shop/orders.py", PYDANTIC)
    found = services.services()
    assert found["shop.orders.child"][0].input is None  # not Nested's: Child declares an Input of its own
    assert found["shop.orders.nested"][0].input == classes["Nested"].input
