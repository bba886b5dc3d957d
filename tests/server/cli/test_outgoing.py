"""``splice outgoing``'s pure parts: ``--option`` values, where secrets come from, and what is printed.

The commands against a running cluster are in tests/e2e/test_outgoing_cli.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from splice.server.cli import build_parser, commands, outgoing
from splice.server.cli.cluster import CliError
from splice.server.connections import KINDS
from splice.server.connections.amqp import AmqpSpec
from splice.server.connections.rest import RestSpec
from splice.server.core.outgoing import KIND_NAMES


def create(*extra: str) -> Any:
    return build_parser().parse_args(
        ["outgoing", "create", "--name", "up", "--kind", "rest", "--address", "http://x", *extra]
    )


def test_the_command_offers_every_registered_kind() -> None:
    assert sorted(KIND_NAMES) == sorted(KINDS)


@pytest.mark.parametrize(
    ("pair", "value"),
    [
        ("timeout=5", 5),
        ("backoff=0.5", 0.5),
        ("verify=false", False),
        ('headers={"X-A": "b"}', {"X-A": "b"}),
        ("ca_file=null", None),
        ("ca_file=/etc/ca.pem", "/etc/ca.pem"),
        ("header=X-Key", "X-Key"),
        ("header=123", "123"),  # a field of text keeps the text, though it reads as a number
        ("header=true", "true"),
        ('header="quoted"', "quoted"),  # a JSON string is still the string
        ("timeout=abc", "abc"),  # the server says what is wrong with it
        ("header=a=b", "a=b"),  # the first '=' splits
        ("unknown=[1, 2]", [1, 2]),  # the server refuses it and names the field
    ],
)
def test_option_values_are_json_unless_the_field_takes_only_text(pair: str, value: object) -> None:
    key = pair.partition("=")[0]
    assert commands.parse_options([pair], RestSpec, {}) == {key: value}


def test_routing_keys_and_exchanges_stay_text() -> None:
    options = commands.parse_options(["routing_key=123", "exchange=orders", "declare=true"], AmqpSpec, {})
    assert options == {"routing_key": "123", "exchange": "orders", "declare": True}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["timeout"], "--option wants KEY=VALUE, got 'timeout'"),
        (["=5"], "--option wants KEY=VALUE"),
        (["timeout=1", "timeout=2"], "--option timeout is given twice"),
        (["token=abc"], "--option token: a secret never goes on the command line: use --token-env VAR"),
        (["address=http://y"], "--option address: give it as --address"),
    ],
)
def test_refused_options(pairs: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message) as refused:
        commands.parse_options(pairs, RestSpec, outgoing.FLAGGED)
    assert refused.value.code == 2


def test_secrets_come_from_the_variables_named() -> None:
    args = create("--token-env", "UP_TOKEN", "--username", "u")
    assert outgoing.secrets_of(args, RestSpec.SECRETS, {"UP_TOKEN": "t0k3n"}) == {"token": "t0k3n"}
    both = create("--key-env", "K", "--password-env", "P")  # the server says which may go together
    assert outgoing.secrets_of(both, RestSpec.SECRETS, {"K": "k", "P": "p"}) == {"password": "p", "key": "k"}


def test_splice_secret_is_the_first_secret_only_when_none_is_named() -> None:
    environ = {"SPLICE_SECRET": "s", "UP_TOKEN": "t"}
    assert outgoing.secrets_of(create(), RestSpec.SECRETS, environ) == {"password": "s"}
    assert outgoing.secrets_of(create("--token-env", "UP_TOKEN"), RestSpec.SECRETS, environ) == {"token": "t"}
    assert outgoing.secrets_of(create(), RestSpec.SECRETS, {}) == {}  # none: a PUT keeps the stored ones


@pytest.mark.parametrize(
    ("extra", "environ", "taken", "message"),
    [
        (("--token-env", "NOPE"), {}, RestSpec.SECRETS, "--token-env NOPE: that environment variable is not set"),
        (("--token-env", "EMPTY"), {"EMPTY": ""}, RestSpec.SECRETS, "not set or empty"),
        (("--token-env", "T"), {"T": "t"}, AmqpSpec.SECRETS, "an amqp connection takes no token .it takes: password"),
        (("--password-env", "P", "--password-prompt"), {"P": "p"}, RestSpec.SECRETS, "give the password once"),
    ],
)
def test_refused_secrets(extra: tuple[str, ...], environ: dict[str, str], taken: tuple[str, ...], message: str) -> None:
    args = create(*extra)
    args.kind = "amqp" if taken == AmqpSpec.SECRETS else "rest"
    with pytest.raises(CliError, match=message):
        outgoing.secrets_of(args, taken, environ)


def test_the_prompt_asks_for_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or "pa55")
    assert outgoing.secrets_of(create("--password-prompt"), RestSpec.SECRETS, {"SPLICE_SECRET": "x"}) == {
        "password": "pa55"
    }
    assert asked == ["password of outgoing connection up: "]


ROWS = [
    {"name": "billing", "kind": "rest", "address": "https://billing.example.com/api", "token": "***"},
    {"name": "crm", "kind": "sql", "address": "postgresql://crm@127.0.0.1/crm", "password": "***"},
    {"name": "cache", "kind": "redis", "address": "redis://127.0.0.1:6379/0"},
]


def test_the_list_is_a_table_naming_the_secrets_set() -> None:
    assert outgoing.table(ROWS).splitlines() == [
        "NAME     KIND   ADDRESS                          SECRETS",
        "billing  rest   https://billing.example.com/api  token",
        "crm      sql    postgresql://crm@127.0.0.1/crm   password",
        "cache    redis  redis://127.0.0.1:6379/0         -",
    ]


def test_a_connection_is_described_one_field_a_line_as_option_takes_it() -> None:
    row = {"name": "up", "kind": "rest", "address": "http://x", "username": None, "verify": True, "headers": {}}
    assert outgoing.describe(row | {"token": "***"}).splitlines() == [
        "outgoing connection up (rest)",
        "  address   http://x",
        "  username  -",
        "  verify    true",
        "  headers   {}",
        "  token     ***",
    ]


def test_ping_lines_say_each_servers_outcome() -> None:
    answer = {
        "name": "crm",
        "ok": False,
        "servers": [
            {"server": "server1", "ok": True, "ms": 3.24, "detail": "PostgreSQL 16.4"},
            {"server": "server12", "ok": False, "ms": 0.0, "error": "server unreachable: timed out"},
        ],
    }
    assert outgoing.ping_lines(answer) == [
        "server1   ok        3.2 ms  PostgreSQL 16.4",
        "server12  FAIL      0.0 ms  server unreachable: timed out",
    ]
