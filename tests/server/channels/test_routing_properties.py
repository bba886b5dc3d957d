"""Properties of channel path patterns (``splice.server.channels.routing``), with hypothesis.

A generated pattern matches every path generated from it, giving back the parameter values it was built with;
any other path (mutations of those, random text) matches exactly when a separate, backtracking matcher written
here from the documented rules says it should; and the router picks the most specific route that allows the
method.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hypothesis import example, given
from hypothesis import strategies as st

from splice.server.channels.routing import (
    METHODS,
    Match,
    NotAllowed,
    Route,
    Router,
    check_pattern,
    compile_pattern,
    parameters,
)
from splice.server.channels.specs import CHANNEL_PATH_PATTERN
from tests._hypothesis import budget

# Characters a literal may hold: URL-ish, a few that regular expressions treat specially, and non-ASCII.
LITERAL = st.text(st.sampled_from("abcz09-_.~+*?()[]$^|\\ é中"), min_size=1, max_size=6)
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True)
# Values: anything but '/' for {x}, ASCII digits for {x:int}, anything (slashes, newlines included) for {x:path}.
SEGMENT_TEXT = st.text(st.characters(blacklist_characters="/", blacklist_categories=("Cs",)), min_size=1, max_size=8)
PATH_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
DIGITS = st.text(st.sampled_from("0123456789"), min_size=1, max_size=6)


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # str, int or path


Piece = str | Param


@st.composite
def patterns(draw: st.DrawFn) -> list[Piece]:
    """A pattern as pieces: literal text and parameters, each parameter a whole segment, ``path`` only last."""
    count = draw(st.integers(0, 4))
    names = draw(st.lists(NAME, min_size=count + 1, max_size=count + 1, unique=True))
    pieces: list[Piece] = []
    for index in range(count):
        pieces.append("/")
        if draw(st.booleans()):
            pieces.append(Param(names[index], draw(st.sampled_from(["str", "int"]))))
        else:
            pieces.append(draw(LITERAL))
    if draw(st.booleans()):
        pieces += ["/", Param(names[count], "path")]
    elif not pieces or draw(st.booleans()):
        pieces.append("/")  # a trailing slash, or the root itself
    return _merged(pieces)


def _merged(pieces: list[Piece]) -> list[Piece]:
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, str) and out and isinstance(out[-1], str):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def text_of(pieces: list[Piece]) -> str:
    return "".join(p if isinstance(p, str) else f"{{{p.name}:{p.kind}}}" for p in pieces)


def value_for(kind: str) -> st.SearchStrategy[str]:
    return {"str": SEGMENT_TEXT, "int": DIGITS, "path": PATH_TEXT}[kind]


def reference(pieces: list[Piece], path: str) -> dict[str, str] | None:
    """The documented rules, by backtracking: literals are exact, ``str`` takes one or more characters but '/',
    ``int`` one or more ASCII digits, ``path`` one or more of anything; the whole path must be used."""
    if not pieces:
        return {} if path == "" else None
    head, rest = pieces[0], pieces[1:]
    if isinstance(head, str):
        return reference(rest, path[len(head) :]) if path.startswith(head) else None
    for end in range(len(path), 0, -1):
        value = path[:end]
        if head.kind == "str" and "/" in value:
            continue
        if head.kind == "int" and not all(c in "0123456789" for c in value):
            continue
        found = reference(rest, path[end:])
        if found is not None:
            return {head.name: value, **found}
    return None


@given(data=st.data(), pieces=patterns())
@budget(400)
def test_a_pattern_matches_the_paths_it_generates_and_gives_their_parameters_back(
    data: st.DataObject, pieces: list[Piece]
) -> None:
    pattern = text_of(pieces)
    regex, names = compile_pattern(pattern)
    assert [(p.name, p.kind) for p in pieces if isinstance(p, Param)] == parameters(pattern)
    values = {p.name: data.draw(value_for(p.kind), label=p.name) for p in pieces if isinstance(p, Param)}
    path = "".join(p if isinstance(p, str) else values[p.name] for p in pieces)
    found = regex.match(path)
    assert found is not None, f"{pattern!r} does not match {path!r}"
    assert found.groupdict() == values
    assert names == tuple(values)


def _mutations(path: str) -> st.SearchStrategy[str]:
    def mutate(how: tuple[int, int, str]) -> str:
        kind, at, char = how
        at = at % (len(path) + 1)
        if kind == 0:
            return path[:at] + path[at + 1 :]
        if kind == 1:
            return path[:at] + char + path[at:]
        return path[:at] + char + path[at + 1 :]

    chars = st.sampled_from(["/", "0", "a", "\n", "{", " ", "é", "x"])
    return st.one_of(
        st.tuples(st.integers(0, 2), st.integers(0, 40), chars).map(mutate),
        st.just(path + "/"),
        st.just(path.rstrip("/")),
        st.text(st.sampled_from("/a0\n.é-"), max_size=12),
    )


@given(data=st.data(), pieces=patterns())
@example(data=None, pieces=["/f/", Param("rest", "path")]).via("a newline in a path parameter: regex '.' skips it")
@budget(400)
def test_a_pattern_matches_exactly_the_paths_the_rules_allow(data: st.DataObject | None, pieces: list[Piece]) -> None:
    pattern = text_of(pieces)
    regex, _ = compile_pattern(pattern)
    if data is None:
        paths = ["/f/a\nb", "/f/\n", "/f/a/\n/b"]
    else:
        values = {p.name: data.draw(value_for(p.kind)) for p in pieces if isinstance(p, Param)}
        generated = "".join(p if isinstance(p, str) else values[p.name] for p in pieces)
        paths = [data.draw(_mutations(generated), label="path")]
    for path in paths:
        found = regex.match(path)
        expected = reference(pieces, path)
        assert (found is not None) == (expected is not None), f"{pattern!r} on {path!r}: expected {expected}"
        if found is not None and [p for p in pieces if isinstance(p, Param) and p.kind != "str"] == []:
            # Without int or path parameters, each parameter is one whole segment: the split is unique.
            assert found.groupdict() == expected


@st.composite
def routers(draw: st.DrawFn) -> list[Route]:
    routes = []
    for index, pieces in enumerate(draw(st.lists(patterns(), min_size=1, max_size=5))):
        methods = frozenset(draw(st.sets(st.sampled_from(sorted(METHODS - {"HEAD"})), min_size=1, max_size=3)))
        routes.append(Route(f"r{index}", text_of(pieces), methods, "svc"))
    return routes


@given(routes=routers(), data=st.data())
@budget(300)
def test_the_router_picks_the_most_specific_route_that_allows_the_method(
    routes: list[Route], data: st.DataObject
) -> None:
    router = Router(routes)
    chosen = data.draw(st.sampled_from(routes), label="route")
    values = {name: data.draw(value_for(kind)) for name, kind in parameters(chosen.pattern)}
    path = data.draw(st.one_of(st.just(_fill(chosen.pattern, values)), st.text(st.sampled_from("/a0."), max_size=8)))
    method = data.draw(st.sampled_from(sorted(METHODS)), label="method")
    matching = [r for r in routes if r.regex.match(path)]
    allowing = [r for r in matching if method in r.methods or (method == "HEAD" and "GET" in r.methods)]
    result = router.match(method, path)
    if allowing:
        assert isinstance(result, Match)
        assert result.route in allowing
        best = min((r.params != (), *r.rank, r.name) for r in allowing)
        assert (result.route.params != (), *result.route.rank, result.route.name) == best
        found = result.route.regex.match(path)
        assert found is not None
        assert result.params == found.groupdict()
    elif matching:
        allowed = frozenset(m for r in matching for m in r.methods)
        assert result == NotAllowed(allowed | ({"HEAD"} if "GET" in allowed else set()))
    else:
        assert result is None


def _fill(pattern: str, values: dict[str, str]) -> str:
    out = pattern
    for name, kind in parameters(pattern):
        out = out.replace(f"{{{name}:{kind}}}", values[name])
    return out


ECMA_PATTERN = re.compile(CHANNEL_PATH_PATTERN.replace("$", r"\Z"))
"""As a JSON schema validator reads it: ECMA's '$' is the end of the text, Python's also matches before a final '\n'."""
PATTERN_TEXT = st.lists(
    st.sampled_from(["/", "{", "}", "a", "id", ":int", ":path", ":str", ":x", "splice", "1", "_", "é", "\n", "$"]),
    max_size=12,
).map("".join)


@given(text=st.one_of(PATTERN_TEXT, st.text(max_size=16)))
@example(text="/splice\n")
@example(text="/a/{id}\n")
@budget(500)
def test_the_documents_regular_expression_agrees_with_check_pattern_on_any_text(text: str) -> None:
    # The OpenAPI document and the JSON schema of splice.toml show the rule as CHANNEL_PATH_PATTERN; the server
    # checks with check_pattern: a disagreement is a valid-looking body refused, or a bad one let through.
    assert bool(ECMA_PATTERN.search(text)) == (check_pattern(text) is None), (text, check_pattern(text))
