"""The ``splice`` command imports a command module only when its command line needs it.

``splice server run`` (what ``splice start`` launches for every server) and ``splice start`` itself parse their
command line without importing the modules of other commands, which would cost a server ~0.1-0.2 s of its start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from splice.server import cli


def registered(name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.extension(name).register(sub, cli._cluster_arg)
    return set(sub.choices)


def test_the_map_of_commands_is_what_each_extension_registers() -> None:
    for name in cli.EXTENSIONS:
        mapped = {command for command, names in cli.COMMANDS.items() if name in names}
        assert registered(name) == mapped, f"cli.COMMANDS is out of step with what cli/{name}.py registers"
    assert not cli.CORE & set(cli.COMMANDS)
    core = cli.build_parser(())
    choices = next(a for a in core._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(choices) == cli.CORE | {"completion"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["server", "run", "DIR", "--server", "server1"], ()),
        (["start", "DIR"], ()),
        (["--version"], ()),
        (["channel", "list"], ("channels",)),
        (["create", "server", "DIR"], ("lb", "distributed", "scheduler", "dashboard")),
        (["--help"], cli.EXTENSIONS),
        (["completion", "bash"], cli.EXTENSIONS),
        (["no-such-command"], cli.EXTENSIONS),
        ([], cli.EXTENSIONS),
    ],
)
def test_needed_extensions(argv: list[str], expected: tuple[str, ...]) -> None:
    assert cli.needed_extensions(argv) == expected


def modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in sys.modules if m.startswith('splice.server.cli.')))"
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(answer.stdout.split())


def test_server_run_and_start_import_no_other_command() -> None:
    for argv in (["server", "run", "/nowhere"], ["start", "/nowhere"]):
        code = f"from splice.server import cli\ncli.build_parser(cli.needed_extensions({argv!r})).parse_args({argv!r})"
        loaded = modules_after(code)
        assert loaded <= {"splice.server.cli._process"}, f"splice {' '.join(argv)} imported {sorted(loaded)}"


def test_every_command_is_still_there() -> None:
    """A real ``splice --help`` lists every command; ``splice create --help`` every kind; a wrong one lists them all."""
    run = [sys.executable, "-m", "splice.server.cli"]
    top = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True).stdout
    for command in [*cli.COMMANDS, *cli.CORE]:
        assert command in top
    create = subprocess.run([*run, "create", "--help"], capture_output=True, text=True, check=True).stdout
    for kind in ("load-balancer", "server", "odb", "cluster", "scheduler", "dashboard"):
        assert kind in create
    wrong = subprocess.run([*run, "chanel"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "'channel'" in wrong.stderr
    assert "'audit'" in wrong.stderr
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("splice ")
