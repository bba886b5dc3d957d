"""A file that does not parse: which statements are kept (at their own lines) and which are replaced."""

from __future__ import annotations

import ast

import pytest

from splice.lsp.index import parse_module
from splice.lsp.recovery import recover

SERVICE = """from splice.server import Service


class A(Service):
    def handle(self):
        self.invoke('a.one')

    def other(self):
{broken}

    def third(self):
        self.invoke('a.three')


class B(Service):
    def handle(self):
        self.invoke('b.one')
"""


@pytest.mark.parametrize(
    "broken",
    [
        "        x = = 1",
        "        self.invoke('crm.",
        "        x = ",
        "        self.invoke('a', {",
        "        if x",
        "        self.",
        "        x = (1,\n        y = 2",
        "        self.invoke('a', {'k': 1}) $",
        "        y = 1; x = = 2",
    ],
)
def test_a_broken_line_in_a_method_costs_that_statement_only(broken: str) -> None:
    source = SERVICE.format(broken=broken)
    recovered = recover(source)
    assert recovered is not None
    assert recovered.holes == set(range(9, 9 + broken.count("\n") + 1))
    services = [c.args[0] for c in ast.walk(recovered.tree) if isinstance(c, ast.Call) and c.args]
    lines = [c.lineno for c in ast.walk(recovered.tree) if isinstance(c, ast.Call) and c.args]
    assert [ast.literal_eval(s) for s in services] == ["a.one", "a.three", "b.one"]
    shift = broken.count("\n")
    assert lines == [6, 12 + shift, 17 + shift]
    names = [n.name for n in ast.walk(recovered.tree) if isinstance(n, ast.FunctionDef)]
    assert names == ["handle", "other", "third", "handle"]


@pytest.mark.parametrize(
    ("source", "holes", "kept"),
    [
        # a broken class header: the class goes, with what is indented under it; the next class stays
        (
            "class A(Service:\n    def handle(self):\n        self.invoke('a')\n\nclass B(Service):\n    x = 1\n",
            {1, 2, 3},
            "pass\npass\n\nclass B(Service):\n    x = 1",
        ),
        # a half-typed method header: that method goes, its sibling stays
        (
            "class A:\n    def handle(self\n        self.invoke('a')\n\n    def other(self):\n        pass\n",
            {2, 3},
            "class A:\n    pass\n    pass\n\n    def other(self):\n        pass",
        ),
        # a bad indentation: only that line
        ("class A:\n    x = 1\n  y = 2\n    z = 3\n", {3}, "class A:\n    x = 1\n    pass\n    z = 3"),
        # grammatical to parso, not to Python: the statement ast names goes
        ("def f():\n    return 1\n    f() = 3\n    g()\n", {3}, "def f():\n    return 1\n    pass\n    g()"),
        # a broken decorator
        ("@dec(\nclass A:\n    pass\n", {1}, "pass\n\nclass A:\n    pass"),
        # tabs
        ("class A:\n\tdef f(self):\n\t\tx = = 1\n\tdef g(self):\n\t\tpass\n", {3}, None),
        # a multi-line string above a broken line keeps its text
        ('x = """a\n  b\n"""\ny = = 2\n', {4}, "x = 'a\\n  b\\n'\npass"),
        # Windows line ends
        ("class A:\r\n    x = = 1\r\n    y = 2\r\n", {2}, "class A:\n    pass\n    y = 2"),
    ],
)
def test_what_is_kept(source: str, holes: set[int], kept: str | None) -> None:
    recovered = recover(source)
    assert recovered is not None
    assert recovered.holes == holes
    if kept is not None:
        assert ast.unparse(recovered.tree) == ast.unparse(ast.parse(kept))


@pytest.mark.parametrize("source", ["x = '😀' $ 1\n", "garbage ) ( ] here\n  and more $$ \n\tfoo(\n", "if x:\n"])
def test_garbage_leaves_nothing(source: str) -> None:
    recovered = recover(source)
    assert recovered is None or not any(
        isinstance(node, ast.ClassDef | ast.FunctionDef | ast.Call | ast.Assign) for node in ast.walk(recovered.tree)
    )


SAMPLE = '''from splice.server import Service


class Create(Service):
    """Creates an order."""

    class Input:
        customer: int

    def handle(self):
        customer = self.invoke("crm.get-customer", {"id": self.request.input["customer"]})
        if customer["vip"]:
            self.invoke("crm.notify", {"id": 1, "text": "héllo 😀"})
        self.out.sql["stock"].execute("update stock set qty = qty - 1")

    async def after_handle(self):
        await self.ainvoke("audit.record", {"what": "order"})


@decorated(
    1,
)
class Other(Service):
    def handle(self):
        try:
            x = self.invoke('billing.charge', {'amount': 1})
        except Exception:
            self.out.rest["billing"].get("/x")
        with open("f") as f:
            self.invoke('files.read', {})
'''


def test_every_half_typed_line_leaves_the_others_where_they_are() -> None:
    """Each line of a module cut short at every third character: nothing read elsewhere moves or changes."""
    whole = parse_module("m.py", SAMPLE)
    invokes = {(c.service, c.range) for c in whole.invokes}
    outgoing = set(whole.outgoing)
    lines = SAMPLE.split("\n")
    tried = 0
    for number, line in enumerate(lines):
        for cut in range(0, len(line.rstrip()), 3):
            module = parse_module("m.py", "\n".join([*lines[:number], line[:cut], *lines[number + 1 :]]))
            assert {(c.service, c.range) for c in module.invokes if c.range.line != number} <= invokes
            assert {u for u in module.outgoing if u.range.line != number} <= outgoing
            tried += 1
    assert tried > 250
