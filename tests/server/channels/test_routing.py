"""Channel path patterns and the router's choice between channels."""

from __future__ import annotations

import re

import pytest

from splice.server.channels.routing import (
    Match,
    NotAllowed,
    Route,
    Router,
    check_methods,
    check_pattern,
    compile_pattern,
)
from splice.server.channels.specs import CHANNEL_PATH_PATTERN, METHOD_PATTERN

GOOD = ["/", "/orders", "/orders/{id}", "/orders/{id:int}", "/f/{rest:path}", "/a/{x}-{y}"]


@pytest.mark.parametrize("pattern", GOOD)
def test_good_patterns(pattern: str) -> None:
    assert check_pattern(pattern) is None


BAD = [
    ("orders", "must start with '/'"),
    ("", "must start with '/'"),
    ("/splice", "Splice's own"),
    ("/splice/admin", "Splice's own"),
    ("/orders/{id:float}", "bad parameter"),
    ("/orders/{id", "bad parameter"),
    ("/orders/id}", "bad parameter"),
    ("/orders/{}", "bad parameter"),
    ("/orders/{1id}", "bad parameter"),
    ("/a/{id}/b/{id}", "appears twice"),
]


@pytest.mark.parametrize(("pattern", "fragment"), BAD)
def test_bad_patterns(pattern: str, fragment: str) -> None:
    problem = check_pattern(pattern)
    assert problem is not None
    assert fragment in problem
    with pytest.raises(ValueError, match=re.escape(problem)):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    "pattern",
    [*GOOD, *(p for p, _ in BAD), "/spliced", "/splice", "/a/{id}/b/{idx}", "/{a}{b}", "/x/{a:int}/{a:path}", "/é {x}"],
)
def test_the_documents_regular_expression_agrees_with_check_pattern(pattern: str) -> None:
    # The OpenAPI document shows the rule as a regular expression; the server checks with check_pattern.
    assert bool(re.search(CHANNEL_PATH_PATTERN, pattern)) == (check_pattern(pattern) is None)


@pytest.mark.parametrize("method", ["GET", "get", "Post", "delete", "HEAD", "options", "PATCH", "FETCH", "GETS", ""])
def test_the_documents_method_pattern_agrees_with_check_methods(method: str) -> None:
    try:
        check_methods([method])
        known = bool(method)
    except ValueError:
        known = False
    assert bool(re.search(METHOD_PATTERN, method)) == known


def test_spliced_is_not_reserved() -> None:
    assert check_pattern("/spliced") is None


@pytest.mark.parametrize(
    ("pattern", "path", "params"),
    [
        ("/orders", "/orders", {}),
        ("/orders", "/orders/", None),
        ("/orders.json", "/ordersXjson", None),  # literal text is escaped
        ("/orders/{id}", "/orders/abc", {"id": "abc"}),
        ("/orders/{id}", "/orders/a/b", None),
        ("/orders/{id}", "/orders/", None),
        ("/orders/{id:int}", "/orders/42", {"id": "42"}),
        ("/orders/{id:int}", "/orders/4x", None),
        ("/orders/{id:int}", "/orders/-4", None),
        ("/orders/{id:int}", "/orders/5\n", None),
        ("/files/{rest:path}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/files/{rest:path}", "/files/", None),
        ("/a/{x}-{y:int}", "/a/p-3", {"x": "p", "y": "3"}),
    ],
)
def test_compile_pattern(pattern: str, path: str, params: dict[str, str] | None) -> None:
    regex, names = compile_pattern(pattern)
    found = regex.match(path)
    if params is None:
        assert found is None
    else:
        assert found is not None
        assert found.groupdict() == params
        assert names == tuple(params)


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        (["get"], ["GET"]),
        (["post", "GET", "Post"], ["GET", "POST"]),
        ([], []),
        (["HEAD", "OPTIONS", "DELETE"], ["DELETE", "HEAD", "OPTIONS"]),
    ],
)
def test_check_methods(methods: list[str], expected: list[str]) -> None:
    assert check_methods(methods) == expected


@pytest.mark.parametrize("methods", [["GET", "FETCH"], ["connect"], ["TRACE"]])
def test_check_methods_refuses_unknown(methods: list[str]) -> None:
    with pytest.raises(ValueError, match="unknown HTTP method"):
        check_methods(methods)


def route(name: str, pattern: str, *methods: str) -> Route:
    return Route(name, pattern, frozenset(methods or ("GET",)), f"svc.{name}")


# Names are chosen so that sorting by name alone would pick the wrong route.
ROUTER = Router(
    [
        route("a-any", "/orders/{id}", "GET", "DELETE"),
        route("b-int", "/orders/{id:int}"),
        route("c-new", "/orders/new", "POST"),
        route("d-items", "/orders/{id}/items"),
        route("a-rest", "/files/{rest:path}"),
        route("b-file", "/files/{name}"),
        route("c-readme", "/files/README"),
        route("e-create", "/orders", "POST"),
        route("f-list", "/orders", "GET"),
    ]
)


@pytest.mark.parametrize(
    ("method", "path", "name", "params"),
    [
        ("POST", "/orders/new", "c-new", {}),  # literal beats parameter
        ("GET", "/orders/new", "a-any", {"id": "new"}),  # the literal route has no GET: the parameter one answers
        ("GET", "/orders/42", "b-int", {"id": "42"}),  # {id:int} beats {id}
        ("DELETE", "/orders/42", "a-any", {"id": "42"}),  # ...but only for its methods
        ("GET", "/orders/abc", "a-any", {"id": "abc"}),
        ("GET", "/orders/7/items", "d-items", {"id": "7"}),
        ("GET", "/files/README", "c-readme", {}),
        ("GET", "/files/x.txt", "b-file", {"name": "x.txt"}),  # {name} beats {rest:path}
        ("GET", "/files/a/b", "a-rest", {"rest": "a/b"}),
        ("GET", "/orders", "f-list", {}),
        ("POST", "/orders", "e-create", {}),
        ("HEAD", "/orders", "f-list", {}),  # HEAD goes where GET goes
        ("HEAD", "/orders/42", "b-int", {"id": "42"}),
    ],
)
def test_router_matches(method: str, path: str, name: str, params: dict[str, str]) -> None:
    found = ROUTER.match(method, path)
    assert isinstance(found, Match)
    assert (found.route.name, found.params) == (name, params)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/orders", {"GET", "HEAD", "POST"}),
        ("POST", "/orders/42", {"GET", "HEAD", "DELETE"}),
        ("PATCH", "/orders/new", {"GET", "HEAD", "POST", "DELETE"}),
        ("DELETE", "/files/README", {"GET", "HEAD"}),
    ],
)
def test_router_not_allowed(method: str, path: str, allowed: set[str]) -> None:
    assert ROUTER.match(method, path) == NotAllowed(frozenset(allowed))


def test_head_is_not_allowed_without_get() -> None:
    router = Router([route("create", "/things", "POST")])
    assert router.match("HEAD", "/things") == NotAllowed(frozenset({"POST"}))


@pytest.mark.parametrize("path", ["/nothing", "/orders/", "/files", "/orders/1/items/2", ""])
def test_router_no_match(path: str) -> None:
    assert ROUTER.match("GET", path) is None


def test_router_order_is_most_specific_first() -> None:
    assert [r.name for r in ROUTER.routes] == [
        "d-items",  # 14 characters of literal text
        "c-readme",  # 13
        "c-new",  # 11
        "b-int",  # 8, an int parameter
        "a-any",  # 8, a str parameter
        "e-create",  # 7, no parameter; then by name
        "f-list",
        "b-file",  # 7, a str parameter
        "a-rest",  # 7, a path parameter
    ]
    assert Router([]).match("GET", "/") is None
