"""What user modules import, who depends on whom, and the order to load them in."""

from __future__ import annotations

import ast
import textwrap

import pytest

from splice.server.deploy.modules import dependents, imports_of, load_order, shadowed


@pytest.mark.parametrize(
    ("source", "module", "is_package", "expected"),
    [
        ("import os", "app", False, {"os"}),
        ("import a.b.c", "app", False, {"a", "a.b", "a.b.c"}),
        ("import a.b as ab, c", "app", False, {"a", "a.b", "c"}),
        ("from a.b import c, d", "app", False, {"a", "a.b", "a.b.c", "a.b.d"}),
        ("from a import *", "app", False, {"a"}),
        # relative imports from a module: the package is the module's parent
        ("from . import common", "billing.orders", False, {"billing", "billing.common"}),
        ("from .common import TAX", "billing.orders", False, {"billing", "billing.common", "billing.common.TAX"}),
        ("from .. import shared", "billing.eu.orders", False, {"billing", "billing.shared"}),
        ("from ..tax import rate", "billing.eu.orders", False, {"billing", "billing.tax", "billing.tax.rate"}),
        # relative imports from a package: the package is the module itself (which is never its own import)
        ("from . import orders", "billing", True, {"billing.orders"}),
        ("from .orders import X", "billing.eu", True, {"billing", "billing.eu.orders", "billing.eu.orders.X"}),
        ("from .. import orders", "billing.eu", True, {"billing", "billing.orders"}),
        # beyond the top-level package: Python refuses these, so they import nothing
        ("from . import x", "orders", False, set()),
        ("from .. import common", "billing.orders", False, set()),
        ("from ... import common", "billing.eu", True, set()),
        # imports anywhere in the tree count, not only at the top
        ("def f():\n    import json\nclass C:\n    from x import y", "app", False, {"json", "x", "x.y"}),
        ("import app", "app", False, set()),
        ("importlib.import_module('hidden')", "app", False, set()),
    ],
)
def test_imports_of(source: str, module: str, is_package: bool, expected: set[str]) -> None:
    assert imports_of(ast.parse(textwrap.dedent(source)), module, is_package) == expected


GRAPH = {
    "billing.common": {"splice", "json"},
    "billing.orders": {"billing", "billing.common"},
    "billing.invoices": {"billing.orders"},
    "crm": {"billing.invoices"},
    "loner": set(),
    "cycle.a": {"cycle.b"},
    "cycle.b": {"cycle.a"},
    "cycle.user": {"cycle.a"},
}


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        (["billing.common"], {"billing.orders", "billing.invoices", "crm"}),
        (["billing.invoices"], {"crm"}),
        (["crm"], set()),
        (["loner"], set()),
        (["not.deployed"], set()),
        (["billing.common", "billing.orders"], {"billing.invoices", "crm"}),  # changed ones are excluded
        (["cycle.a"], {"cycle.b", "cycle.user"}),
        (["json"], {"billing.common", "billing.orders", "billing.invoices", "crm"}),
    ],
)
def test_dependents(changed: list[str], expected: set[str]) -> None:
    assert dependents(GRAPH, changed) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (
            GRAPH,
            [
                "billing.common",
                "billing.orders",
                "billing.invoices",
                "crm",
                "cycle.b",
                "cycle.a",
                "cycle.user",
                "loner",
            ],
        ),
        (["crm", "billing.common"], ["billing.common", "crm"]),  # through modules that are not loaded
        (["crm", "billing.orders", "loner"], ["billing.orders", "crm", "loner"]),
        (["cycle.b", "cycle.a"], ["cycle.b", "cycle.a"]),
        (["new.module"], ["new.module"]),
        ([], []),
    ],
)
def test_load_order(names: list[str], expected: list[str]) -> None:
    assert load_order(GRAPH, names) == expected
    assert load_order(GRAPH, reversed(list(names))) == expected  # stable whatever order names come in


@pytest.mark.parametrize(
    ("module", "foreign", "expected"),
    [
        ("json", set(), "json"),
        ("email.utils", set(), "email"),
        ("typing", set(), "typing"),
        ("__future__", set(), "__future__"),
        ("splice", set(), "splice"),
        ("splice.extra", set(), "splice"),
        ("__main__", set(), "__main__"),
        ("requests.helpers", {"requests"}, "requests"),
        ("billing.orders", {"requests"}, None),
        ("jsonish", set(), None),
        ("spliced", set(), None),
    ],
)
def test_shadowed(module: str, foreign: set[str], expected: str | None) -> None:
    assert shadowed(module, foreign.__contains__) == expected
