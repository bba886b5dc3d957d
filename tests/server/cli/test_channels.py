"""``splice channel create``'s body for each kind, refused flags, and the line each kind is listed with."""

from __future__ import annotations

from typing import Any

import pytest

from splice.server.channels.specs import CHANNEL_KINDS
from splice.server.cli import build_parser, channels
from splice.server.cli.cluster import CliError


def create(*args: str) -> Any:
    return build_parser().parse_args(["channel", "create", "--name", "c", *args])


def test_the_command_offers_every_channel_kind() -> None:
    assert channels.KINDS == CHANNEL_KINDS


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (  # the REST form, as it always was: no kind, GET by default
            ("--path", "/orders/{id}", "--service", "orders.get"),
            {"name": "c", "path": "/orders/{id}", "service": "orders.get", "methods": ["GET"]},
        ),
        (
            ("--path", "/o", "--service", "s", "--method", "POST", "--method", "PUT", "--security", "sec"),
            {"name": "c", "path": "/o", "service": "s", "methods": ["POST", "PUT"], "security": "sec"},
        ),
        (
            ("--kind", "websocket", "--path", "/ws", "--service", "chat.post", "--option", "max_message=65536"),
            {"name": "c", "kind": "websocket", "path": "/ws", "service": "chat.post", "max_message": 65536},
        ),
        (
            ("--kind", "jsonrpc", "--path", "/rpc", "--services", "orders.*", "crm.get", "--option", "max_batch=10"),
            {"name": "c", "kind": "jsonrpc", "path": "/rpc", "services": ["orders.*", "crm.get"], "max_batch": 10},
        ),
        (
            ("--kind", "amqp", "--service", "s", "--connection", "rabbit", "--queue", "123", "--option", "prefetch=5"),
            {"name": "c", "kind": "amqp", "service": "s", "connection": "rabbit", "queue": "123", "prefetch": 5},
        ),
        (
            ("--kind", "amqp", "--service", "s", "--connection", "r", "--queue", "q", "--option", "dead_letter=7"),
            {"name": "c", "kind": "amqp", "service": "s", "connection": "r", "queue": "q", "dead_letter": "7"},
        ),
        (
            ("--kind", "file", "--service", "s", "--directory", "inbox", "--option", "pattern=*.csv"),
            {"name": "c", "kind": "file", "service": "s", "directory": "inbox", "pattern": "*.csv"},
        ),
    ],
)
def test_the_body_of_each_kind(args: tuple[str, ...], body: dict[str, Any]) -> None:
    assert channels.body_of(create(*args)) == body


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--path", "/o"), "a rest channel needs --service"),
        (("--kind", "amqp", "--service", "s"), "an amqp channel needs --connection and --queue"),
        (("--kind", "file", "--service", "s"), "a file channel needs --directory"),
        (
            (
                "--kind",
                "jsonrpc",
            ),
            "a jsonrpc channel needs --path",
        ),
        (
            ("--kind", "amqp", "--service", "s", "--connection", "r", "--queue", "q", "--method", "GET"),
            r"--method: not for amqp channels \(they take --service --connection --queue and --option\)",
        ),
        (("--kind", "jsonrpc", "--path", "/r", "--service", "s"), "--service: not for jsonrpc channels"),
        (("--path", "/o", "--service", "s", "--option", "path=/x"), "--option path: give it as --path"),
        (("--path", "/o", "--service", "s", "--option", "kind=file"), "--option kind: give it as --kind"),
    ],
)
def test_flags_a_kind_does_not_take_or_needs_are_named(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CliError, match=message) as refused:
        channels.body_of(create(*args))
    assert refused.value.code == 2


@pytest.mark.parametrize(
    ("row", "line"),
    [
        (
            {"kind": "rest", "path": "/o/{id}", "methods": ["GET"], "service": "o.get", "security": None},
            "GET /o/{id} -> o.get",
        ),
        (
            {"kind": "rest", "path": "/o", "methods": ["POST"], "service": "o", "security": "k", "options": None},
            "POST /o -> o  [security: k]",
        ),
        ({"kind": "websocket", "path": "/ws", "service": "chat", "security": None}, "websocket /ws -> chat"),
        (
            {"kind": "jsonrpc", "path": "/rpc", "service": "", "security": None, "options": {"services": ["a.*"]}},
            "jsonrpc /rpc -> a.*",
        ),
        (
            {"kind": "amqp", "path": "", "service": "o", "options": {"queue": "orders", "connection": "rabbit"}},
            "amqp queue orders on rabbit -> o",
        ),
        (
            {"kind": "file", "path": "", "service": "o", "options": {"directory": "/in", "pattern": "*.csv"}},
            "file /in (*.csv) -> o",
        ),
    ],
)
def test_each_kind_is_listed_with_its_main_fields(row: dict[str, Any], line: str) -> None:
    assert channels.summary(row) == line
