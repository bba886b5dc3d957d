"""Diagnostics of one file against the workspace's and the cluster's services: table-driven, no I/O."""

from __future__ import annotations

import pytest

from splice.lsp.diagnostics import diagnose
from splice.lsp.index import Field, Range, WorkspaceIndex

CRM = """from splice.server import Service


class GetCustomer(Service):
    class Input:
        id: int
        verbose: bool = False

    def handle(self):
        pass
"""

CLUSTER = {"billing.charge": (Field("amount", "int", True),), "legacy.thing": None}


def problems_of(source: str, path: str = "app.py") -> list[tuple[str, str, Range, str | None]]:
    index = WorkspaceIndex()
    index.update("crm.py", CRM)
    module = index.update(path, source)
    return [(p.code, p.message, p.range, p.suggestion) for p in diagnose(module, index.services(), CLUSTER)]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("self.invoke('crm.get-customer', {'id': 1})\n", []),
        ("self.invoke('billing.charge', {'amount': 1})\n", []),
        ("self.invoke('legacy.thing', {'anything': 1})\n", []),
        ("self.invoke('crm.get-customer', payload)\n", []),
        (
            "self.invoke('crm.get-custmer')\n",
            [
                (
                    "unknown-service",
                    "no service named 'crm.get-custmer' in the workspace or the cluster;"
                    " did you mean 'crm.get-customer'?",
                    Range(0, 13, 0, 28),
                    "crm.get-customer",
                )
            ],
        ),
        (
            "x = 'é😀'; self.ainvoke('zzz')\n",
            [
                (
                    "unknown-service",
                    "no service named 'zzz' in the workspace or the cluster",
                    Range(0, 25, 0, 28),
                    None,
                )
            ],
        ),
        (
            "self.invoke('crm.get-customer', {'verbose': True, 'idd': 2})\n",
            [
                ("missing-input-field", "'crm.get-customer' requires input field 'id'", Range(0, 13, 0, 29), None),
                (
                    "unknown-input-field",
                    "'crm.get-customer' declares no input field 'idd'; did you mean 'id'?",
                    Range(0, 51, 0, 54),
                    "id",
                ),
            ],
        ),
        (
            "self.invoke_async('billing.charge', {})\n",
            [("missing-input-field", "'billing.charge' requires input field 'amount'", Range(0, 19, 0, 33), None)],
        ),
        ("def f(:\n", [("syntax-error", "syntax error: invalid syntax", Range(0, 6, 0, 7), None)]),
    ],
)
def test_invokes_and_syntax(source: str, expected: list[tuple[str, str, Range, str | None]]) -> None:
    assert problems_of(source) == expected


@pytest.mark.parametrize(
    ("source", "codes"),
    [
        ("from splice.server import Service\nclass A(Service):\n    def handle(self): ...\n", []),
        ("from splice.server import Service\nclass A(Service):\n    pass\n", [("no-handle", Range(1, 6, 1, 7))]),
        (
            "from splice.server import Service\nclass A(Service):\n    def handle(self, x): ...\n",
            [("bad-hook-signature", Range(2, 8, 2, 14))],
        ),
        (
            "from splice.server import Service\nclass A(Service):\n    name = 'bad name'\n    def handle(self): ...\n",
            [("bad-service-name", Range(2, 12, 2, 20))],
        ),
        (
            "from splice.server import Service\nclass A(Service):\n    name = 'crm.get-customer'\n"
            "    def handle(self): ...\n",
            [("duplicate-service", Range(2, 12, 2, 28))],
        ),
    ],
)
def test_definitions(source: str, codes: list[tuple[str, Range]]) -> None:
    assert [(code, where) for code, _, where, _ in problems_of(source)] == codes


def test_a_duplicate_is_an_error_on_both_definitions() -> None:
    index = WorkspaceIndex()
    index.update("crm.py", CRM)
    clone = index.update("crm/__init__.py", CRM)
    original = index.get("crm.py")
    assert original is not None
    for module, other in ((original, "crm/__init__.py"), (clone, "crm.py")):
        (problem,) = diagnose(module, index.services(), {})
        assert problem.severity == "error"
        assert problem.range == Range(3, 6, 3, 17)
        assert problem.message == f"service name 'crm.get-customer' is also defined in {other} (GetCustomer)"


ORDERS = """from pydantic import BaseModel, Field
from splice.server import Service


class Line(BaseModel):
    sku: str
    qty: int


class Create(Service):
    name = "orders.create"

    class Input(BaseModel):
        customer: int
        lines: list[Line]
        note: str = Field(default="")
        code: str = Field(alias="orderCode")

    def handle(self):
        pass
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # nested models' keys are not the service's fields: no diagnostics for them
        (
            "self.invoke('orders.create', {'customer': 1, 'orderCode': 'x', 'lines': [{'sku': 'a', 'qty': 1}]})\n",
            [],
        ),
        (
            "self.invoke('orders.create', {'customer': 1, 'code': 'x', 'lines': []})\n",
            [
                ("missing-input-field", "'orders.create' requires input field 'orderCode'"),
                ("unknown-input-field", "'orders.create' declares no input field 'code'"),
            ],
        ),
        (
            "self.invoke('orders.create', {'orderCode': 'x', 'lines': []})\n",
            [("missing-input-field", "'orders.create' requires input field 'customer'")],
        ),
    ],
)
def test_a_pydantic_input(source: str, expected: list[tuple[str, str]]) -> None:
    index = WorkspaceIndex()
    index.update("orders.py", ORDERS)
    module = index.update("app.py", source)
    assert [(p.code, p.message.split(";")[0]) for p in diagnose(module, index.services(), {})] == expected


HALF_TYPED = """from splice.server import Service


class Checkout(Service):
    def handle(self):
        self.invoke('crm.get-custmer', {'id': 1})

    def after_handle(self):
        self.invoke('crm.
"""


def test_a_file_that_does_not_parse_keeps_its_other_problems() -> None:
    assert [(code, where) for code, _, where, _ in problems_of(HALF_TYPED)] == [
        ("unknown-service", Range(5, 21, 5, 36)),
        ("syntax-error", Range(8, 20, 8, 21)),
    ]
    fixed = HALF_TYPED.replace("self.invoke('crm.\n", "self.invoke('crm.get-customer', {'id': 2})\n")
    assert [code for code, *_ in problems_of(fixed)] == ["unknown-service"]
    assert [code for code, *_ in problems_of("x = '😀' $ 1\nclass (\n")] == ["syntax-error"]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        # handle() may be the line being typed: no "does not define handle()" meanwhile
        ("    def handle(self", ["syntax-error"]),
        ("    def other(self) ->", ["syntax-error"]),
        # what can be read still counts
        ("    def handle(self, x):\n        pass\n    def other(self) ->", ["bad-hook-signature", "syntax-error"]),
    ],
)
def test_definitions_of_a_class_that_does_not_parse(broken: str, expected: list[str]) -> None:
    source = f"from splice.server import Service\n\n\nclass A(Service):\n    x = 1\n{broken}\n"
    assert [code for code, *_ in problems_of(source)] == expected


def test_an_input_with_a_half_typed_line_is_not_known() -> None:
    """Its fields are not claimed: a caller sending the field being typed is not told it is unknown."""
    index = WorkspaceIndex()
    index.update("orders.py", ORDERS.replace('        note: str = Field(default="")', "        note: st ="))
    module = index.update("app.py", "self.invoke('orders.create', {'note': 'x'})\n")
    assert diagnose(module, index.services(), {}) == []
