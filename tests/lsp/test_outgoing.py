"""Outgoing connection names: found in the source with their ranges, checked against the cluster's, described."""

from __future__ import annotations

import pytest

from splice.lsp.completion import Context, context_at
from splice.lsp.diagnostics import connection_problem, diagnose
from splice.lsp.index import Range, parse_module
from splice.lsp.outgoing import Connection, OutgoingUse, connection_markdown

CONNECTIONS = (
    Connection("billing", "rest", "http://127.0.0.1:9"),
    Connection("crm", "sql", "postgresql://crm@db/crm"),
    Connection("sessions", "redis", "redis://127.0.0.1:6379/0"),
    Connection("orders", "amqp", "amqp://guest@127.0.0.1:5672/"),
)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('self.out.rest["billing"].get("/x")', [("rest", "billing", Range(0, 15, 0, 22))]),
        ("x = 'é😀'; self.out.sql['crm']", [("sql", "crm", Range(0, 25, 0, 28))]),
        ("await self.out.amqp[r'orders'].publish(b'')", [("amqp", "orders", Range(0, 22, 0, 28))]),
        ("with self.out.redis['sessions'] as r: pass", [("redis", "sessions", Range(0, 21, 0, 29))]),
        ('self.out.rest[name]; self.out.rest[f"{x}"]; self.out["rest"]["a"]', []),
        ('other.out.rest["a"]; self.rest["a"]; self.out.kafka["a"]; out.rest["a"]', []),
    ],
)
def test_uses_and_their_ranges(source: str, found: list[tuple[str, str, Range]]) -> None:
    module = parse_module("m.py", source + "\n")
    assert [(u.kind, u.name, u.range) for u in module.outgoing] == found


NO_BILING = "no rest connection named 'biling' in the cluster"


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("rest", "billing", None),
        ("amqp", "orders", None),
        ("rest", "biling", ("unknown-connection", f"{NO_BILING}; did you mean 'billing'?", "billing")),
        ("redis", "cache", ("unknown-connection", "no redis connection named 'cache' in the cluster", None)),
        ("rest", "crm", ("connection-kind", "'crm' is a sql connection, not rest", None)),
        ("sql", "orders", ("connection-kind", "'orders' is an amqp connection, not sql", None)),
    ],
)
def test_problems(kind: str, name: str, expected: tuple[str, str, str | None] | None) -> None:
    use = OutgoingUse(kind, name, Range(3, 10, 3, 20))
    problem = connection_problem(use, CONNECTIONS)
    if expected is None:
        assert problem is None
        return
    assert problem is not None
    assert (problem.code, problem.message, problem.suggestion) == expected
    assert problem.severity == "warning"
    assert problem.range == use.range


def test_names_are_checked_only_when_the_cluster_listed_its_connections() -> None:
    module = parse_module("m.py", 'self.out.rest["nope"]\n')
    assert diagnose(module, {}, {}, None) == []
    assert [p.code for p in diagnose(module, {}, {}, ())] == ["unknown-connection"]
    assert [p.code for p in diagnose(module, {}, {}, CONNECTIONS)] == ["unknown-connection"]


@pytest.mark.parametrize(
    ("before", "context"),
    [
        ('        x = self.out.rest["bil', Context("connection", "bil", "rest")),
        ("self.out.sql['", Context("connection", "", "sql")),
        ('self.out.redis[ r"se', Context("connection", "se", "redis")),
        ("self.out.sql", None),
        ('self.out.kafka["x', None),
        ('self.out.rest["billing"].get("', None),
    ],
)
def test_completion_context(before: str, context: Context | None) -> None:
    assert context_at(before) == context


@pytest.mark.parametrize(
    ("kind", "name", "connections", "expected"),
    [
        ("rest", "billing", CONNECTIONS, "**billing**\n\nrest connection\n\naddress `http://127.0.0.1:9`\n"),
        ("rest", "crm", CONNECTIONS, "**crm**\n\na sql connection, not rest: `self.out.sql['crm']`\n"),
        ("rest", "orders", CONNECTIONS, "**orders**\n\nan amqp connection, not rest: `self.out.amqp['orders']`\n"),
        ("rest", "x", CONNECTIONS, "**x**\n\nno rest connection of this name in the cluster\n"),
        ("rest", "x", None, "**x**\n\nrest connection (the cluster's connections are not known)\n"),
    ],
)
def test_hover_text(kind: str, name: str, connections: tuple[Connection, ...] | None, expected: str) -> None:
    assert connection_markdown(kind, name, connections) == expected


def test_a_connection_from_the_admin_api_keeps_no_secret() -> None:
    raw = {"name": "billing", "kind": "rest", "address": "https://b.example.com", "token": "***", "username": "u"}
    assert Connection.from_json(raw) == Connection("billing", "rest", "https://b.example.com")
