"""Edits of cluster.toml that keep the rest of the text as it was, or refuse."""

from __future__ import annotations

import textwrap
import tomllib
from collections.abc import Callable

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
    ],
)
def test_set_table(before: str, values: dict[str, str | int], after: str) -> None:
    assert config_edit.set_table(before, "load_balancer", values) == after


def test_set_table_quotes_a_value_that_needs_it() -> None:
    """However tomlkit spells it (``"a\\"b"``, or ``'a"b'`` since 0.15), the file says ``a"b`` again."""
    after = config_edit.set_table("[load_balancer]\nhost = 'old'\n", "load_balancer", {"host": 'a"b'})
    assert tomllib.loads(after) == {"load_balancer": {"host": 'a"b'}}
    assert after.startswith("[load_balancer]\nhost = ")
    assert after.count("\n") == 2


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


COMMENTED = toml(
    """
    # Splice cluster configuration
    [cluster]
    name = "shop"  # the name
    # the bus: empty, servers call each other over HTTP
    redis = ""

    [deploy]  # limits
    max_module_bytes = 1048576  # a MiB

    # the servers, one per port
    [[servers]]
    name = "server1"  # first
    port = 17011

    [[servers]]
    name = "server2"
    port = 17012
    # about server2

    # the scheduler
    [[schedulers]]
    name = "scheduler1"  # the only one
    """
)


@pytest.mark.parametrize(
    ("edit", "before", "after"),
    [
        (  # a new table goes below [deploy], the comment above [[servers]] stays above it
            lambda text: config_edit.set_table(text, "load_balancer", {"port": 17010}),
            "[deploy]  # limits\nmax_module_bytes = 1048576  # a MiB\n\n# the servers",
            "[deploy]  # limits\nmax_module_bytes = 1048576  # a MiB\n\n[load_balancer]\nport = 17010\n\n# the servers",
        ),
        (  # a changed value keeps its comment, a new key goes after the last one
            lambda text: config_edit.set_table(text, "deploy", {"max_module_bytes": 2, "import_timeout": 3}),
            "max_module_bytes = 1048576  # a MiB\n\n# the servers",
            "max_module_bytes = 2  # a MiB\nimport_timeout = 3\n\n# the servers",
        ),
        (  # after the last entry and the comment about it, before the comment above [[schedulers]]
            lambda text: config_edit.add_server(text, "server3", "127.0.0.1", 17013),
            "# about server2\n\n# the scheduler",
            '# about server2\n\n[[servers]]\nname = "server3"\nhost = "127.0.0.1"\nport = 17013\n\n# the scheduler',
        ),
        (  # the entry goes with its comments; the comment above [[servers]] stays
            lambda text: config_edit.remove_server(text, "server1"),
            '# the servers, one per port\n[[servers]]\nname = "server1"  # first\nport = 17011\n\n[[servers]]\n',
            "# the servers, one per port\n[[servers]]\n",
        ),
        (
            lambda text: config_edit.add_array_entry(text, "schedulers", {"name": "s2"}, "add a scheduler"),
            'name = "scheduler1"  # the only one\n',
            'name = "scheduler1"  # the only one\n\n[[schedulers]]\nname = "s2"\n',
        ),
    ],
    ids=["add-table", "set-keys", "add-server", "remove-server", "add-scheduler"],
)
def test_comments_and_layout_survive_an_edit(edit: Callable[[str], str], before: str, after: str) -> None:
    assert before in COMMENTED
    assert edit(COMMENTED) == COMMENTED.replace(before, after)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (  # the blank lines that end the file make one above the new table
            '[cluster]\nname = "x"\n\n\n\n',
            '[cluster]\nname = "x"\n\n[load_balancer]\nport = 1\n',
        ),
        (  # no blank lines anywhere: one above the new table, one between it and [[servers]]
            '[cluster]\nname = "x"\n[[servers]]\nname = "a"\n',
            '[cluster]\nname = "x"\n\n[load_balancer]\nport = 1\n\n[[servers]]\nname = "a"\n',
        ),
        (  # [[servers]] first: the new table at the top
            '# hello\n[[servers]]\nname = "a"\n',
            '# hello\n[load_balancer]\nport = 1\n\n[[servers]]\nname = "a"\n',
        ),
        (  # dotted keys are set where they are
            'load_balancer.port = 7  # seven\n[cluster]\nname = "x"\n',
            'load_balancer.port = 1  # seven\n[cluster]\nname = "x"\n',
        ),
    ],
)
def test_set_table_layouts(before: str, after: str) -> None:
    assert config_edit.set_table(before, "load_balancer", {"port": 1}) == after


def test_add_server_after_an_entry_with_a_sub_table() -> None:
    before = '[[servers]]\nname = "a"\n[servers.extra]\nx = 1\n\n[deploy]\nimport_timeout = 1.0\n'
    after = config_edit.add_server(before, "b", "h", 2)
    assert after == before.replace("x = 1\n\n", 'x = 1\n\n[[servers]]\nname = "b"\nhost = "h"\nport = 2\n\n')


def test_entries_written_apart_are_refused() -> None:
    """tomlkit would write the [[servers]] entries together, moving the user's lines: nothing is edited."""
    text = '[[servers]]\nname = "a"\n\n[cluster]\nname = "x"\n\n[[servers]]\nname = "b"\n'
    with pytest.raises(ConfigError, match="cannot add a server in this file's layout"):
        config_edit.add_server(text, "c", "h", 3)


@pytest.mark.parametrize(
    ("before", "name", "after"),
    [
        (  # the comment above the next entry stays above it
            '[cluster]\nname = "x"\n\n[[servers]]\nname = "a"\n\n# b\n[[servers]]\nname = "b"\n',
            "a",
            '[cluster]\nname = "x"\n\n# b\n[[servers]]\nname = "b"\n',
        ),
        (  # also when no table is above the removed entry
            '# my cluster\n\n[[servers]]\nname = "a"\n\n# b\n[[servers]]\nname = "b"\n',
            "a",
            '# my cluster\n\n# b\n[[servers]]\nname = "b"\n',
        ),
        (  # the comments above the removed entry stay too: they may be about every server
            '[[servers]]\nname = "a"\n\n# b\n[[servers]]\nname = "b"  # bee\n\n# c\n[[servers]]\nname = "c"\n',
            "b",
            '[[servers]]\nname = "a"\n\n# b\n# c\n[[servers]]\nname = "c"\n',
        ),
    ],
)
def test_remove_server_keeps_the_comments_of_the_others(before: str, name: str, after: str) -> None:
    assert config_edit.remove_server(before, name) == after
