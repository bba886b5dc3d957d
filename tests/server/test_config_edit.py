"""Edits of cluster.toml that keep the rest of the text as it was, or refuse."""

from __future__ import annotations

import textwrap

import pytest

from splice.server.cli import _config_edit as config_edit
from splice.server.core.errors import ConfigError


def toml(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


BASE = toml(
    """
    # my cluster
    [cluster]
    name = "shop"  # the name

    [[servers]]
    name = "server1"
    host = "127.0.0.1"
    port = 17011

    [[servers]]
    name = "server2"  # second
    host = "127.0.0.1"
    port = 17012
    """
)


@pytest.mark.parametrize(
    ("before", "values", "after"),
    [
        (  # missing: added before the first [[servers]]
            BASE,
            {"host": "127.0.0.1", "port": 17010},
            BASE.replace(
                '[[servers]]\nname = "server1"',
                '[load_balancer]\nhost = "127.0.0.1"\nport = 17010\n\n[[servers]]\nname = "server1"',
            ),
        ),
        (  # present: only the values change, comments stay
            '[load_balancer]\nhost = "127.0.0.1"  # loopback\nport = 1 # p\n\n[[servers]]\nname = "a"\nport = 2\n',
            {"host": "0.0.0.0", "port": 17010},
            '[load_balancer]\nhost = "0.0.0.0"  # loopback\nport = 17010 # p\n\n[[servers]]\nname = "a"\nport = 2\n',
        ),
        (  # present without one of the keys: it is added to the table
            '[load_balancer]\nport = 1\n\n[cluster]\nname = "x"\n',
            {"host": "::1", "port": 1},
            '[load_balancer]\nport = 1\nhost = "::1"\n\n[cluster]\nname = "x"\n',
        ),
        (  # no [[servers]] at all: appended
            '[cluster]\nname = "x"\n\n',
            {"port": 5},
            '[cluster]\nname = "x"\n\n[load_balancer]\nport = 5\n',
        ),
        (  # a value that needs escaping
            "[load_balancer]\nhost = 'old'\n",
            {"host": 'a"b'},
            '[load_balancer]\nhost = "a\\"b"\n',
        ),
    ],
)
def test_set_table(before: str, values: dict[str, str | int], after: str) -> None:
    assert config_edit.set_table(before, "load_balancer", values) == after


def test_add_server_after_the_last_one_keeps_what_follows() -> None:
    before = BASE + "\n[load_balancer]\nport = 17010\n"
    after = config_edit.add_server(before, "server3", "127.0.0.1", 17013)
    assert after == BASE + '\n[[servers]]\nname = "server3"\nhost = "127.0.0.1"\nport = 17013\n' + (
        "\n[load_balancer]\nport = 17010\n"
    )


def test_add_server_at_the_end() -> None:
    after = config_edit.add_server(BASE, "x", "::1", 1)
    assert after == BASE + '\n[[servers]]\nname = "x"\nhost = "::1"\nport = 1\n'


@pytest.mark.parametrize(
    ("name", "after"),
    [
        ("server1", BASE.replace('[[servers]]\nname = "server1"\nhost = "127.0.0.1"\nport = 17011\n\n', "")),
        ("server2", BASE.replace('\n[[servers]]\nname = "server2"  # second\nhost = "127.0.0.1"\nport = 17012\n', "")),
    ],
)
def test_remove_server(name: str, after: str) -> None:
    assert config_edit.remove_server(BASE, name) == after


def test_remove_a_server_with_a_sub_table_takes_the_sub_table_too() -> None:
    before = BASE.replace("port = 17011\n", "port = 17011\n[servers.extra]\nx = 1\n")
    assert config_edit.remove_server(before, "server1") == config_edit.remove_server(BASE, "server1")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: config_edit.remove_server(BASE, "server9"), "no server named 'server9'"),
        (
            lambda: config_edit.remove_server('servers = [{name = "a", port = 1}, {name = "b", port = 2}]\n', "a"),
            "cannot remove a server in this file's layout",
        ),
        (
            lambda: config_edit.add_server('servers = [{name = "a", port = 1}]\n', "b", "h", 2),
            "cannot add a server in this file's layout",
        ),
        (
            lambda: config_edit.set_table("load_balancer = {port = 1}\n", "load_balancer", {"port": 2}),
            "cannot add \\[load_balancer\\] in this file's layout",
        ),
        (lambda: config_edit.set_table("[broken\n", "load_balancer", {"port": 2}), "not valid TOML"),
    ],
)
def test_refusals(call: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()  # type: ignore[operator]
