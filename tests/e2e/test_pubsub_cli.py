"""``splice topic`` and ``splice sub`` against a real started two-server cluster (SQLite).

A topic and a pull subscription are created, messages published through the CLI (JSON given, text from stdin,
bytes from a file, a repeated idempotency key), listed with their depth, peeked at and purged; a push
subscription delivers to a deployed service on whichever server claims the message, and one whose service
refuses every message fills its dead letters, which are shown with the error, replayed and purged. Topic
permissions are given and taken away; refusals are one line naming what was wrong, exit 1 (2 for the usage).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, eventually, make_cluster, running, splice

SERVICES = textwrap.dedent(
    '''
    import json
    from pathlib import Path

    from splice.server import Service

    OUT = Path("OUT")


    class Ship(Service):
        """Writes each message it is given to a file named after the message and the server that delivered it."""

        name = "orders.ship"

        def handle(self):
            message = self.request.pubsub
            seen = {"data": self.request.payload, "topic": message.topic, "channel": self.request.channel}
            (OUT / f"{message.id}-{self.server}.json").write_text(json.dumps(seen))


    class Refuse(Service):
        name = "orders.refuse"

        def handle(self):
            raise ValueError(f"no stock for {self.request.payload['sku']}")
    '''
)


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The real ``splice`` (no ``$SPLICE_CLUSTER``: every command names its cluster)."""
    environ = {k: v for k, v in os.environ.items() if k != "SPLICE_CLUSTER"}
    return subprocess.run(
        [sys.executable, "-m", "splice.server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def ok(*args: str, stdin: str = "") -> str:
    result = run(*args, stdin=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def refused(*args: str, code: int = 1) -> str:
    """The one line a refused command prints on stderr (nothing on stdout)."""
    result = run(*args)
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("splice: ")
    return result.stderr.removeprefix("splice: ").rstrip("\n")


def columns(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A started two-server cluster on SQLite, for every test here (each uses names of its own)."""
    with running(make_cluster(tmp_path_factory.mktemp("pubsub") / "cluster", servers=2)) as made:
        yield made


def test_a_pull_subscription_from_publish_to_purge(pair: Cluster, tmp_path: Path) -> None:
    cluster = ("--cluster", str(pair.directory))
    created = ok("topic", "create", "orders.created", "--expiry", "3600", *cluster)
    lines = created.splitlines()
    assert lines[0] == "created topic orders.created"
    assert "  persistent          true" in lines
    assert "  expiry              3600.0" in lines
    assert re.search(r"^  server1: deployed", created, re.M)
    assert re.search(r"^  server2: deployed", created, re.M)
    assert refused("topic", "create", "orders.created", *cluster) == "topic 'orders.created' already exists"

    made = run("sub", "create", "audit", "--topic", "orders.*", *cluster)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == "created subscription audit"
    assert made.stderr == ""  # a pattern that matches a topic, no service: nothing to warn of

    first = ok(
        "topic", "publish", "orders.created", '{"order": 1}', "--key", "order-1", "--header", "src=shop", *cluster
    )
    match = re.fullmatch(r"published message (\d+) to orders.created: 1 subscription\n", first)
    assert match, first
    again = ok("topic", "publish", "orders.created", '{"order": 1}', "--key", "order-1", *cluster)
    assert again == (
        f"not enqueued again: key 'order-1' was published as message {match[1]} within the topic's window\n"
    )
    ok("topic", "publish", "orders.created", "-", "--text", *cluster, stdin="hello there")
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"\x00\xffbinary")
    answer = json.loads(ok("topic", "publish", "orders.created", "--file", str(raw), "--bytes", "--json", *cluster))
    assert (answer["subscriptions"], answer["duplicate"], answer["persistent"]) == (1, False, True)

    topics = columns(ok("topic", "list", *cluster))
    assert topics[0] == ["NAME", "PERSISTENT", "SUBSCRIPTIONS", "DEPTH", "OLDEST"]
    assert topics[1][:4] == ["orders.created", "yes", "1", "3"]
    subs = columns(ok("sub", "list", *cluster))
    assert subs[0] == ["NAME", "TOPIC", "SERVICE", "READY", "IN-FLIGHT", "DEAD", "OLDEST"]
    assert subs[1][:6] == ["audit", "orders.*", "(pull)", "3", "0", "0"]
    assert re.fullmatch(r"\d+(\.\d)?[smhd]", subs[1][6]), subs[1]

    peeked = json.loads(ok("sub", "peek", "audit", "--json", *cluster))
    assert [row["message"]["data"] for row in peeked] == [{"order": 1}, "hello there", "AP9iaW5hcnk="]
    assert peeked[0]["message"]["headers"] == {"src": "shop"}
    assert peeked[0]["message"]["publisher"] == "admin-api"
    assert peeked[2]["message"]["encoding"] == "base64"
    text = ok("sub", "peek", "audit", "--limit", "2", *cluster).splitlines()
    assert len(text) == 2
    assert text[0].startswith(f"{peeked[0]['delivery']}  message {match[1]}  attempt 0  ")
    assert text[0].endswith('  {"order": 1}')
    assert text[1].endswith('  "hello there"')

    shown = ok("sub", "show", "audit", *cluster).splitlines()
    assert shown[0] == "subscription audit"
    assert "  ready           3" in shown
    assert "  service         -" in shown
    topic = json.loads(ok("topic", "show", "orders.created", "--json", *cluster))
    assert (topic["depth"], topic["subscriptions"]) == (3, ["audit"])

    assert ok("sub", "purge", "audit", "--dead", *cluster) == "purged 0 dead letters from subscription audit\n"
    assert ok("sub", "purge", "audit", *cluster) == "purged 3 messages waiting from subscription audit\n"
    assert ok("sub", "peek", "audit", *cluster) == "no messages waiting in audit\n"
    assert json.loads(ok("sub", "show", "audit", "--json", *cluster))["ready"] == 0

    assert ok("sub", "delete", "audit", *cluster).splitlines()[0] == "deleted subscription audit and its messages"
    assert ok("topic", "delete", "orders.created", *cluster).splitlines()[0] == "deleted topic orders.created"
    assert ok("sub", "list", *cluster) == ""
    assert (
        refused("topic", "show", "orders.created", *cluster) == "no topic named 'orders.created' (known topics: none)"
    )


def test_a_push_subscription_delivers_to_a_deployed_service(pair: Cluster, tmp_path: Path) -> None:
    cluster = ("--cluster", str(pair.directory))
    out = tmp_path / "out"
    out.mkdir()
    source = tmp_path / "ship.py"
    source.write_text(SERVICES.replace('Path("OUT")', f"Path({str(out)!r})"), encoding="utf-8")
    ok("topic", "create", "shop.orders", *cluster)
    early = run("sub", "create", "shipping", "--topic", "shop.orders", "--service", "orders.ship", *cluster)
    assert early.returncode == 0, early.stderr
    assert (
        early.stderr == "warning: no service named 'orders.ship' is deployed yet: deliveries to it fail until one is\n"
    )
    splice("deploy", str(source), *cluster, "--root", str(tmp_path))

    published = ok("topic", "publish", "shop.orders", '{"sku": "A1", "count": 2}', *cluster)
    message = re.fullmatch(r"published message (\d+) to shop.orders: 1 subscription\n", published)
    assert message, published
    (delivered,) = eventually(lambda: list(out.glob(f"{message[1]}-*.json")))  # type: ignore[misc]
    assert delivered.name in (f"{message[1]}-server1.json", f"{message[1]}-server2.json")
    seen = json.loads(delivered.read_text())
    assert seen == {"data": {"sku": "A1", "count": 2}, "topic": "shop.orders", "channel": "pubsub:shipping"}
    eventually(lambda: columns(ok("sub", "list", *cluster))[1][3:6] == ["0", "0", "0"])

    # A subscriber that refuses every message: one attempt, then a dead letter with the error, replayed on demand.
    created = ok(
        "sub", "create", "refusing", "--topic", "shop.*", "--service", "orders.refuse", "--delivery-limit", "1",
        "--unordered", *cluster,
    )  # fmt: skip
    assert "  ordered         false" in created.splitlines()
    ok("topic", "publish", "shop.orders", '{"sku": "B2"}', *cluster)

    def dead() -> list[str]:
        return ok("sub", "dead", "refusing", *cluster).splitlines()

    (line,) = eventually(lambda: [d for d in dead() if d != "no dead letters in refusing"])  # type: ignore[misc]
    assert "attempt 1" in line
    assert line.endswith('  {"sku": "B2"}  error: service \'orders.refuse\' failed: ValueError: no stock for B2')
    letters = json.loads(ok("sub", "dead", "refusing", "--json", *cluster))
    assert [(d["attempts"], d["message"]["data"]) for d in letters] == [(1, {"sku": "B2"})]
    replayed = ok("sub", "replay", "refusing", "--id", str(letters[0]["delivery"]), *cluster)
    assert replayed == "replayed 1 dead letters of subscription refusing\n"
    eventually(lambda: json.loads(ok("sub", "dead", "refusing", "--json", *cluster)))  # dead again: it still refuses
    assert ok("sub", "purge", "refusing", "--dead", *cluster) == "purged 1 dead letters from subscription refusing\n"
    assert ok("sub", "dead", "refusing", *cluster) == "no dead letters in refusing\n"
    for name in ("shipping", "refusing"):
        ok("sub", "delete", name, *cluster)
    ok("topic", "delete", "shop.orders", *cluster)


def test_topic_permissions_are_given_and_taken_away(pair: Cluster) -> None:
    cluster = ("--cluster", str(pair.directory))
    splice("security", "create", "--name", "partners", "--kind", "apikey", "--key", "k3y", *cluster)
    given = ok(
        "topic", "allow", "partners", "--publish", "orders.*", "billing.due", "--subscribe", "orders.**", *cluster
    )
    assert given.splitlines()[0] == (
        "security definition partners may publish to orders.*, billing.due; subscribe to orders.**"
    )
    assert ok("topic", "permissions", *cluster) == (
        "partners  may publish to orders.*, billing.due; subscribe to orders.**\n"
    )
    rows = json.loads(ok("topic", "permissions", "--json", *cluster))
    assert rows == [{"security": "partners", "publish": ["orders.*", "billing.due"], "subscribe": ["orders.**"]}]
    taken = ok("topic", "disallow", "partners", *cluster)
    assert taken.splitlines()[0] == "security definition partners may no longer publish or subscribe to any topic"
    assert ok("topic", "permissions", *cluster) == ""
    assert refused("topic", "allow", "partner", "--publish", "a", *cluster) == (
        "no security definition named 'partner' (known security definitions: partners); did you mean 'partners'?"
    )
    assert refused("topic", "allow", "partners", *cluster, code=2) == (
        "give the topics it may use: --publish P ... and/or --subscribe P ..."
    )


def test_refusals_are_one_line_naming_what_was_wrong(pair: Cluster, tmp_path: Path) -> None:
    cluster = ("--cluster", str(pair.directory))
    ok("topic", "create", "ticks", "--not-persistent", *cluster)
    assert refused("sub", "create", "watch", "--topic", "ticks", *cluster) == (
        "subscription 'watch' has no service (a pull subscription), but topic 'ticks' is kept in memory only"
        " (persistent false): pull subscriptions need a persistent topic; give a service to push to"
    )
    assert refused("sub", "create", "watch", "--topic", "tick", *cluster) == (
        "no topic named 'tick' (known topics: ticks); did you mean 'ticks'?"
    )
    assert refused("topic", "publish", "tick", "1", *cluster) == (
        "no topic named 'tick' (known topics: ticks); did you mean 'ticks'?"
    )
    assert refused("topic", "create", "bad name", *cluster).startswith("the request is not valid: name: ")
    assert refused("topic", "create", "big", "--max-payload", str(64 * 1024 * 1024), *cluster) == (
        "the request is not valid: max_payload: must be <= 16777216, got 67108864"
    )
    assert refused("topic", "publish", "ticks", "{not json", *cluster, code=2).startswith(
        "the message is not valid JSON ("
    )
    assert refused("topic", "publish", "ticks", *cluster, code=2) == (
        "give the message once: DATA (JSON), '-' (stdin) or --file F"
    )
    assert refused("topic", "publish", "ticks", "1", "--header", "novalue", *cluster, code=2) == (
        "--header wants K=V, got 'novalue'"
    )
    missing = tmp_path / "missing.json"
    assert refused("topic", "publish", "ticks", "--file", str(missing), *cluster, code=2) == (
        f"cannot read {missing}: No such file or directory"
    )
    ok("topic", "create", "small", "--max-payload", "8", *cluster)
    ok("sub", "create", "small-audit", "--topic", "small", *cluster)
    assert refused("topic", "publish", "small", '"a longer message"', *cluster) == (
        "a message of 18 bytes is over the limit of topic 'small' (max_payload 8 bytes)"
    )
    assert refused("sub", "peek", "nothing", *cluster) == (
        "no subscription named 'nothing' (known subscriptions: small-audit)"
    )
    assert refused("topic", "delete", "small", *cluster) == (
        "topic 'small' has subscriptions: small-audit; delete them first"
    )
    for command in (("sub", "delete", "small-audit"), ("topic", "delete", "small"), ("topic", "delete", "ticks")):
        ok(*command, *cluster)
