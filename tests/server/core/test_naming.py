"""Name rules for modules and services."""

from __future__ import annotations

import re

import pytest

from splice.server.core.naming import (
    MAX_SERVICE_NAME,
    check_module_path,
    check_service_name,
    closest,
    kebab,
    module_name,
    service_name,
)


@pytest.mark.parametrize(
    ("class_name", "expected"),
    [
        ("CreateOrder", "create-order"),
        ("GetHTTPStatus", "get-http-status"),
        ("HTTPServer", "http-server"),
        ("my_svc", "my-svc"),
        ("_Private", "private"),
        ("Order2Create", "order2-create"),
        ("V2API", "v2-api"),
        ("ABC", "abc"),
        ("getHTTP", "get-http"),
        ("plain", "plain"),
    ],
)
def test_kebab(class_name: str, expected: str) -> None:
    assert kebab(class_name) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("orders.py", "orders"),
        ("billing/orders.py", "billing.orders"),
        ("billing/__init__.py", "billing"),
        ("a/b/c/__init__.py", "a.b.c"),
        ("match.py", "match"),  # a soft keyword is a valid module name
    ],
)
def test_module_name(path: str, expected: str) -> None:
    assert check_module_path(path) is None
    assert module_name(path) == expected


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("", "empty"),
        ("billing\\orders.py", "use '/'"),
        ("/billing/orders.py", "relative to the project root"),
        ("billing/orders.txt", "must end with '.py'"),
        ("billing/orders", "must end with '.py'"),
        ("__init__.py", "project root itself"),
        ("billing//orders.py", "'' in"),
        ("./orders.py", "'.' in"),
        ("../orders.py", "'..' in"),
        ("billing/class.py", "'class' in"),
        ("billing/my-orders.py", "'my-orders' in"),
        ("billing.v2/orders.py", "'billing.v2' in"),
        ("2fa.py", "'2fa' in"),
    ],
)
def test_bad_module_paths(path: str, fragment: str) -> None:
    problem = check_module_path(path)
    assert problem is not None
    assert fragment in problem
    with pytest.raises(ValueError, match=re.escape(problem)):
        module_name(path)


@pytest.mark.parametrize(
    ("module", "class_name", "explicit", "expected"),
    [
        ("billing.orders", "CreateOrder", None, "billing.orders.create-order"),
        ("billing", "GetHTTPStatus", None, "billing.get-http-status"),
        ("billing.orders", "CreateOrder", "orders.create", "orders.create"),
        ("billing.orders", "CreateOrder", "", ""),  # explicit wins even when bad: check_service_name judges it
    ],
)
def test_service_name(module: str, class_name: str, explicit: str | None, expected: str) -> None:
    assert service_name(module, class_name, explicit) == expected


@pytest.mark.parametrize(
    "name",
    ["echo", "billing.orders.create-order", "_private", "9lives", "api/v1:get", "x" * MAX_SERVICE_NAME],
)
def test_good_service_names(name: str) -> None:
    assert check_service_name(name) is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (None, "must be a string, not NoneType"),
        (42, "must be a string, not int"),
        ("", "must not be empty"),
        ("x" * (MAX_SERVICE_NAME + 1), f"at most {MAX_SERVICE_NAME} characters"),
        ("-leading", "must start with"),
        (".leading", "must start with"),
        ("has space", "may only hold"),
        ("orders.get\n", "may only hold"),
        ("ordérs", "may only hold"),
        ("a?b", "may only hold"),
    ],
)
def test_bad_service_names(name: object, fragment: str) -> None:
    problem = check_service_name(name)
    assert problem is not None
    assert fragment in problem


@pytest.mark.parametrize(
    ("name", "candidates", "expected"),
    [
        (
            "billing.orders.get-ordr",
            ["billing.orders.get-order", "billing.orders.create-order"],
            "billing.orders.get-order",
        ),
        ("echo", {"echo2", "ping"}, "echo2"),
        ("echo", ["something-else-entirely"], None),
        ("echo", [], None),
    ],
)
def test_closest(name: str, candidates: list[str] | set[str], expected: str | None) -> None:
    assert closest(name, candidates) == expected
