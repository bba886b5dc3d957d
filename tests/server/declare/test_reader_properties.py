"""Properties of the splice.toml reader (``splice.server.declare.reader.parse``), with hypothesis.

Any text, and any TOML document (sections and keys a declaration uses, values of every TOML type, nesting), is
either read or refused with ``DeclarationError`` whose every problem names the file, a line of it (or none when it
cannot be found) and says what is wrong: never another exception. Valid generated declarations (security
definitions, REST channels, cron jobs) read back as what was written, each field located on its own line.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, time
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from splice.server.declare.reader import SECTIONS, Declaration, DeclarationError, parse
from tests._hypothesis import budget

FILE = "config/splice.toml"
BARE = re.compile(r"[A-Za-z0-9_-]+")


def toml_value(value: Any) -> str:
    """``value`` in TOML, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_key(key: str) -> str:
    return key if BARE.fullmatch(key) else toml_string(key)


def toml_document(data: dict[str, Any]) -> str:
    """Top-level arrays of tables under ``[[section]]`` headers, one key a line; anything else inline."""
    lines = []
    for key, value in data.items():
        if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                lines.append(f"[[{toml_key(key)}]]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


KEYS = st.sampled_from(
    ["name", "kind", "path", "service", "methods", "security", "username", "password_env", "key_env", "header",
     "token_env", "address", "timeout", "cron", "interval", "at", "in", "trigger", "timezone", "payload", "misfire",
     "retries", "backoff", "paused", "start", "repeats", "connection", "queue", "topic", "subscription", "max_depth",
     "delivery", "directory", "pattern", "size", "ttl", "backend", "weeks", "minutes", "seconds", "x", ""]
)  # fmt: skip
TEXT = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["rest", "basic", "apikey", "amqp", "file", "websocket", "jsonrpc", "sql", "redis", "memory",
                     "/orders/{id}", "orders.get", "*/5 * * * *", "0 0 30 2 *", "1" * 5000 + " * * * *", "UTC",
                     "Europe/Nowhere", "2026-12-01T10:00:00Z", "2026-12-01T10:00:00", "GET", "FETCH", "A_VAR", "1x",
                     "run_once", "skip", "https://example.com", "redis://127.0.0.1:6379/0", "../../etc/passwd"]),
)  # fmt: skip
SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    TEXT,
    st.datetimes(timezones=st.none() | st.just(UTC)),
    st.dates(),
    st.times(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.one_of(KEYS, TEXT), inner, max_size=3),
    max_leaves=6,
)
TABLES = st.dictionaries(KEYS, VALUES, max_size=8)
DOCUMENTS = st.dictionaries(
    st.one_of(st.sampled_from(SECTIONS), TEXT),
    st.one_of(st.lists(TABLES, min_size=1, max_size=3), VALUES),
    max_size=4,
)


def _check_refusal(text: str) -> None:
    try:
        parse(text, FILE)
    except DeclarationError as exc:  # anything else fails the test by itself
        refusal = exc
    else:
        return
    assert refusal.problems
    count = text.count("\n") + 1
    for problem in refusal.problems:
        assert problem.file == FILE
        assert problem.message
        assert problem.line is None or 1 <= problem.line <= count, (problem, count)
        assert str(problem).startswith(FILE)


@given(document=DOCUMENTS)
@example(document={"security": [{"name": "\x85\u2028"}, {}]})  # splitlines() counted NEL and U+2028 as line ends
@budget(150)
def test_any_toml_document_is_read_or_refused_with_located_problems(document: dict[str, Any]) -> None:
    _check_refusal(toml_document(document))


@given(text=st.one_of(st.text(max_size=200), st.lists(st.sampled_from(["[[", "]]", "[", "]", "{", "}", "=", "\n",
        '"', "'", "channels", "jobs", "name", " ", ",", "#", "1", "x.y"]), max_size=40).map("".join)))  # fmt: skip
@example(text="a = " + "[" * 100_000)  # tomllib recursed until RecursionError
@example(text="a = " + "{a=" * 5000)
@example(text="[[jobs]]\nname = 'x'\nservice = 'a.b'\npayload = " + "[" * 300 + "]" * 300 + "\n")
@budget(300)
def test_any_text_is_read_or_refused_with_located_problems(text: str) -> None:
    _check_refusal(text)


NAME = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
SERVICE = st.from_regex(r"[a-z][a-z0-9_]{0,6}(\.[a-z][a-z0-9_-]{0,6}){1,2}", fullmatch=True)
ENV = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
SEGMENT = st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,6}", fullmatch=True), st.just("{id}"), st.just("{n:int}"))
CRONS = st.sampled_from(["*/5 * * * *", "0 2 * * *", "@daily", "15 9 1-7 * MON", "0 0 29 2 *", "0 */3 * JAN-MAR *"])


@st.composite
def declarations(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    names = iter(draw(st.lists(NAME, min_size=12, max_size=12, unique=True)))
    security = []
    for _ in range(draw(st.integers(0, 2))):
        if draw(st.booleans()):
            security.append({"name": next(names), "kind": "basic", "username": draw(NAME), "password_env": draw(ENV)})
        else:
            item = {"name": next(names), "kind": "apikey", "key_env": draw(ENV)}
            if draw(st.booleans()):
                item["header"] = draw(st.sampled_from(["X-Key", "Api-Token"]))
            security.append(item)
    channels = []
    for _ in range(draw(st.integers(0, 3))):
        segments = draw(st.lists(SEGMENT, min_size=1, max_size=3, unique=True))
        if segments[0] == "splice":
            segments[0] = "spliced"
        item = {"name": next(names), "path": "/" + "/".join(segments), "service": draw(SERVICE)}
        if draw(st.booleans()):
            item["methods"] = draw(st.lists(st.sampled_from(["GET", "post", "Put", "DELETE"]), min_size=1, unique=True))
        if security and draw(st.booleans()):
            item["security"] = draw(st.sampled_from([s["name"] for s in security]))
        channels.append(item)
    jobs = []
    for _ in range(draw(st.integers(0, 3))):
        item = {"name": next(names), "service": draw(SERVICE), "cron": draw(CRONS)}
        if draw(st.booleans()):
            item["timezone"] = draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]))
        jobs.append(item)
    return {k: v for k, v in {"security": security, "channels": channels, "jobs": jobs}.items() if v}


@given(written=declarations())
@budget(100)
def test_a_valid_declaration_reads_back_as_written_with_each_field_located(
    written: dict[str, list[dict[str, Any]]],
) -> None:
    text = toml_document(written)
    lines = text.splitlines()
    read = parse(text, FILE)
    assert isinstance(read, Declaration)
    got_security = [(s.name, s.kind, s.username, s.header, s.secret_env) for s in read.security]
    want_security = [
        (s["name"], s["kind"], s.get("username"), s.get("header", "X-API-Key") if s["kind"] == "apikey" else None,
         s.get("password_env") or s.get("key_env"))
        for s in written.get("security", [])
    ]  # fmt: skip
    assert got_security == want_security
    got_channels = [(c.name, c.path, set(c.methods), c.service, c.security, c.kind) for c in read.channels]
    want_channels = [
        (c["name"], c["path"], {m.upper() for m in c.get("methods", ["GET"])}, c["service"], c.get("security"), "rest")
        for c in written.get("channels", [])
    ]
    assert got_channels == want_channels
    got_jobs = [(j.name, j.service, j.body.get("cron"), j.body.get("timezone", "UTC")) for j in read.jobs]
    want_jobs = [(j["name"], j["service"], j["cron"], j.get("timezone", "UTC")) for j in written.get("jobs", [])]
    assert got_jobs == want_jobs
    for spec, table in zip((*read.security, *read.channels, *read.jobs), [
        *written.get("security", []), *written.get("channels", []), *written.get("jobs", [])
    ], strict=True):  # fmt: skip
        assert set(spec.lines) == {"", *table}
        assert lines[spec.lines[""] - 1].startswith("[[")
        for key in table:
            assert lines[spec.lines[key] - 1].startswith(f"{key} ="), (key, spec.lines, lines)
