"""``splice outgoing`` and ``splice channel create --kind`` against a real two-server cluster.

A REST connection to the cluster's own servers is created with its token from an environment variable
(never on the command line or in the output), listed, shown, pinged from both servers, used by a service,
pointed elsewhere with ``--replace`` and deleted; a connection to a closed port fails its ping with exit 1.
SQL (password typed at the prompt) and AMQP (``$SPLICE_SECRET``) connections reach the local PostgreSQL and
RabbitMQ, and channels of the websocket, amqp and file kinds are listed with their main fields.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, free_port, make_cluster, running, splice

PROBE = textwrap.dedent(
    '''
    from splice.server import Service


    class Up(Service):
        """What the server behind the connection 'up' says to a ping (a worker thread: the blocking client)."""

        name = "probe.up"

        def handle(self):
            self.response.payload = self.out.rest["up"].get("/ping").json()


    class AsyncUp(Service):
        name = "probe.async-up"

        async def handle(self):
            answer = await self.out.rest["up"].get("/ping")
            self.response.payload = answer.json()
    '''
)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real ``splice`` with these variables added (and no ``$SPLICE_SECRET`` unless given), in a session
    of its own: with no terminal to open, a prompt reads its answer from ``stdin``."""
    environ = {k: v for k, v in os.environ.items() if k not in ("SPLICE_SECRET", "SPLICE_CLUSTER")} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        start_new_session=True,
    )


def fields(stdout: str) -> dict[str, str]:
    """The fields a created or shown connection was printed with (not the servers' lines)."""
    found = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"  ([a-z_]+)  +(.*)", line)
        if match:
            found[match[1]] = match[2]
    return found


def ping_lines(stdout: str) -> dict[str, list[str]]:
    """``server1  ok  3.2 ms  detail`` as ``{"server1": ["ok", "3.2", "detail"]}``."""
    lines = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\S+)\s+(ok|FAIL)\s+([0-9.]+) ms  (.*)", line)
        assert match, line
        lines[match[1]] = [match[2], match[3], match[4]]
    return lines


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A started two-server cluster on SQLite, for every test here (each uses names of its own)."""
    with running(make_cluster(tmp_path_factory.mktemp("outgoing") / "cluster", servers=2)) as made:
        yield made


def test_a_rest_connection_from_create_to_delete(pair: Cluster, tmp_path: Path) -> None:
    directory = str(pair.directory)
    token = f"t0k3n-{secrets.token_hex(8)}"
    command = (
        "outgoing", "create", "--cluster", directory, "--name", "up", "--kind", "rest",
        "--address", f"{pair.urls[0]}/splice", "--token-env", "UP_TOKEN", "--option", "timeout=5",
    )  # fmt: skip
    created = run(*command, env={"UP_TOKEN": token})
    assert created.returncode == 0, created.stderr
    assert token not in " ".join(command)
    assert token not in created.stdout + created.stderr
    assert created.stdout.splitlines()[0] == "created outgoing connection up (rest)"
    shown = fields(created.stdout)
    assert shown["address"] == f"{pair.urls[0]}/splice"
    assert (shown["token"], shown["timeout"], shown["verify"]) == ("***", "5.0", "true")
    assert re.search(r"^  server1: deployed", created.stdout, re.M)
    assert re.search(r"^  server2: deployed", created.stdout, re.M)

    again = run(*command, env={"UP_TOKEN": token})
    assert again.returncode == 1
    assert again.stderr == "splice: outgoing connection 'up' already exists\n"

    listed = run("outgoing", "list", "--cluster", directory).stdout.splitlines()
    assert listed[0].split() == ["NAME", "KIND", "ADDRESS", "SECRETS"]
    assert [f"{pair.urls[0]}/splice", "token"] == next(line.split()[2:] for line in listed if line.startswith("up "))
    row = json.loads(run("outgoing", "show", "up", "--json", "--cluster", directory).stdout)
    assert (row["name"], row["kind"], row["token"], row["timeout"]) == ("up", "rest", "***", 5.0)
    assert token not in json.dumps(json.loads(run("outgoing", "list", "--json", "--cluster", directory).stdout))

    pinged = run("outgoing", "ping", "up", "--cluster", directory)
    assert pinged.returncode == 0, pinged.stdout + pinged.stderr
    lines = ping_lines(pinged.stdout)
    assert sorted(lines) == ["server1", "server2"]
    for state, _ms, detail in lines.values():
        assert state == "ok"
        assert detail.startswith("HTTP 404 in ")  # any answer of HTTP counts
        assert detail.endswith(f"from {pair.urls[0]}/splice")
    assert json.loads(run("outgoing", "ping", "up", "--json", "--cluster", directory).stdout)["ok"] is True

    # A service calls it by name; after --replace, the next call on every server goes to the new address.
    source = tmp_path / "probe.py"
    source.write_text(PROBE, encoding="utf-8")
    splice("deploy", str(source), "--cluster", directory, "--root", str(tmp_path))
    for name in ("probe.up", "probe.async-up"):
        assert json.loads(splice("invoke", name, "--cluster", directory).stdout)["server"] == "server1"
    replaced = run(
        "outgoing", "create", "--cluster", directory, "--name", "up", "--kind", "rest",
        "--address", f"{pair.urls[1]}/splice", "--replace",
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.splitlines()[0] == "changed outgoing connection up (rest)"
    shown = fields(replaced.stdout)
    assert (shown["address"], shown["token"], shown["timeout"]) == (f"{pair.urls[1]}/splice", "***", "10.0")
    with pair.admin() as admin:
        for url in pair.urls:  # each server, not only the one the command reached
            answer = admin.post(f"{url}/splice/admin/invoke", json={"service": "probe.up"}).json()
            assert answer["payload"]["server"] == "server2"

    deleted = run("outgoing", "delete", "up", "--cluster", directory)
    assert deleted.stdout.splitlines()[0] == "deleted outgoing connection up"
    assert "up " not in [line[:3] for line in run("outgoing", "list", "--cluster", directory).stdout.splitlines()]
    gone = run("outgoing", "show", "up", "--cluster", directory)
    assert (gone.returncode, gone.stderr) == (1, "splice: no outgoing connection named 'up'\n")


def test_a_connection_that_cannot_be_reached_fails_its_ping_on_every_server(pair: Cluster) -> None:
    directory = str(pair.directory)
    closed = f"http://127.0.0.1:{free_port()}/"
    run("outgoing", "create", "--cluster", directory, "--name", "closed", "--kind", "rest", "--address", closed)
    pinged = run("outgoing", "ping", "closed", "--cluster", directory)
    assert pinged.returncode == 1
    lines = ping_lines(pinged.stdout)
    assert sorted(lines) == ["server1", "server2"]
    assert all(state == "FAIL" and "ConnectError" in detail for state, _ms, detail in lines.values()), lines
    answer = json.loads(run("outgoing", "ping", "closed", "--json", "--cluster", directory).stdout)
    assert answer["ok"] is False
    run("outgoing", "delete", "closed", "--cluster", directory)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--kind", "rest", "--option", "retries=many"), {}, "retries: must be an integer, got a string"),
        (("--kind", "rest", "--option", "bogus=1"), {}, "bogus: unknown field (--option takes: header, timeout"),
        (("--kind", "rest", "--password-env", "P"), {"P": "x"}, "a password (HTTP Basic) needs 'username' too"),
        (("--kind", "sql", "--token-env", "T"), {"T": "x"}, "a sql connection takes no token"),
        (("--kind", "rest", "--token-env", "UNSET_HERE"), {}, "--token-env UNSET_HERE: that environment variable"),
    ],
)
def test_refusals_are_one_line_naming_the_field(
    pair: Cluster, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    base = ("outgoing", "create", "--cluster", str(pair.directory), "--name", "refused", "--address", "http://x")
    result = run(*base, *args, env=env)
    assert result.returncode in (1, 2)
    assert result.stdout == ""
    assert result.stderr.startswith("splice: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert all(value not in result.stderr for value in env.values() if len(value) > 1)


def test_sql_with_a_prompted_password_and_amqp_with_splice_secret(pair: Cluster) -> None:
    directory = str(pair.directory)
    typed = f"pw-{secrets.token_hex(6)}"  # PostgreSQL here trusts local users: any password answers
    created = run(
        "outgoing", "create", "--cluster", directory, "--name", "pg", "--kind", "sql",
        "--address", "postgresql://postgres@127.0.0.1:5432/test", "--password-prompt", stdin=typed + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert typed not in created.stdout + created.stderr
    assert "password of outgoing connection pg: " in created.stderr
    assert fields(created.stdout)["password"] == "***"
    lines = ping_lines(run("outgoing", "ping", "pg", "--cluster", directory).stdout)
    assert [(state, detail.split()[0]) for state, _ms, detail in lines.values()] == [("ok", "PostgreSQL")] * 2

    made = run(
        "outgoing", "create", "--cluster", directory, "--name", "rabbit", "--kind", "amqp",
        "--address", "amqp://guest@127.0.0.1:5672/", "--option", "timeout=5", env={"SPLICE_SECRET": "guest"},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert fields(made.stdout)["password"] == "***"
    pinged = run("outgoing", "ping", "rabbit", "--cluster", directory)
    assert pinged.returncode == 0, pinged.stdout
    assert all("RabbitMQ" in detail for _state, _ms, detail in ping_lines(pinged.stdout).values())
    table = run("outgoing", "list", "--cluster", directory).stdout
    assert re.search(r"^pg +sql +postgresql://postgres@127.0.0.1:5432/test +password$", table, re.M), table
    assert re.search(r"^rabbit +amqp +amqp://guest@127.0.0.1:5672/ +password$", table, re.M), table
    for name in ("pg", "rabbit"):
        run("outgoing", "delete", name, "--cluster", directory)


def test_channels_of_other_kinds_are_created_and_listed(pair: Cluster, tmp_path: Path) -> None:
    directory = str(pair.directory)
    suffix = secrets.token_hex(4)
    queue = f"splice-cli-test-{suffix}"
    env = {"RABBIT_PASSWORD": "guest"}
    rabbit = ("--kind", "amqp", "--address", "amqp://guest@127.0.0.1:5672/", "--password-env", "RABBIT_PASSWORD")
    assert run("outgoing", "create", "--cluster", directory, "--name", "mq", *rabbit, env=env).returncode == 0
    inbox = tmp_path / "inbox"
    made = [
        ("ws", ("--kind", "websocket", "--path", "/chat", "--service", "chat.post", "--option", "max_message=4096")),
        ("rpc", ("--kind", "jsonrpc", "--path", "/rpc", "--services", "orders.*", "crm.get")),
        ("mq-in", ("--kind", "amqp", "--service", "orders.take", "--connection", "mq", "--queue", queue)),
        ("drop", ("--kind", "file", "--service", "files.take", "--directory", str(inbox), "--option", "pattern=*.csv")),
        ("rest", ("--path", "/r", "--service", "r.get", "--method", "POST")),
    ]
    try:
        outputs = [run("channel", "create", "--cluster", directory, "--name", name, *args) for name, args in made]
        assert [result.stdout for result in outputs] == [
            "channel ws: websocket /chat -> chat.post\n",
            "channel rpc: jsonrpc /rpc -> orders.* crm.get\n",
            f"channel mq-in: amqp queue {queue} on mq -> orders.take\n",
            f"channel drop: file {inbox} (*.csv) -> files.take\n",
            "channel rest: POST /r -> r.get\n",
        ]
        listed = run("channel", "list", "--cluster", directory).stdout.splitlines()
        assert sorted(listed) == [
            f"drop  file {inbox} (*.csv) -> files.take",
            f"mq-in  amqp queue {queue} on mq -> orders.take",
            "rest  POST /r -> r.get",
            "rpc  jsonrpc /rpc -> orders.* crm.get",
            "ws  websocket /chat -> chat.post",
        ]
        refused = run("channel", "create", "--cluster", directory, "--name", "x", "--kind", "amqp", "--service", "s")
        assert (refused.returncode, refused.stderr) == (2, "splice: an amqp channel needs --connection and --queue\n")
    finally:
        for name, _args in made:
            run("channel", "delete", name, "--cluster", directory)
        run("outgoing", "delete", "mq", "--cluster", directory)
        asyncio.run(_delete_queues(queue, f"{queue}.retry", f"{queue}.dead"))  # what the channel declares
    assert run("channel", "list", "--cluster", directory).stdout == ""


async def _delete_queues(*names: str) -> None:
    """Remove what an AMQP channel may have declared on the shared RabbitMQ (nothing else is named so)."""
    import aio_pika

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with connection:
        for name in names:
            channel = await connection.channel()
            await channel.queue_delete(name)


def test_shell_completion_offers_outgoing_and_its_options() -> None:
    script = splice("completion", "bash").stdout
    probe = textwrap.dedent(
        """
        complete() { :; }  # the script registers itself; not needed to call its function
        source /dev/stdin
        COMP_WORDS=(splice out); COMP_CWORD=1; COMP_LINE="splice out"; COMP_POINT=10
        _shtab_splice splice out splice
        echo "${COMPREPLY[*]}"
        words=(splice outgoing create --)
        COMP_WORDS=("${words[@]}"); COMP_CWORD=3; COMP_LINE="${words[*]}"; COMP_POINT=${#COMP_LINE}
        _shtab_splice splice -- create
        echo "${COMPREPLY[*]}"
        words=(splice channel create --)
        COMP_WORDS=("${words[@]}"); COMP_CWORD=3; COMP_LINE="${words[*]}"; COMP_POINT=${#COMP_LINE}
        _shtab_splice splice -- create
        echo "${COMPREPLY[*]}"
        """
    )
    result = subprocess.run(["bash", "-c", probe], input=script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    commands, outgoing, channel = result.stdout.splitlines()
    assert commands.split() == ["outgoing"]
    assert {"--kind", "--address", "--password-env", "--token-env", "--password-prompt", "--option"} <= set(
        outgoing.split()
    )
    assert {"--kind", "--connection", "--queue", "--directory", "--services", "--option"} <= set(channel.split())


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """``splice outgoing list | head -1`` and the like: the pipe closes before the command is done writing."""
    process = subprocess.Popen(
        [sys.executable, "-m", "splice.server.cli", "completion", "bash"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    process.stdout.close()  # before the command has written anything
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr == ""
