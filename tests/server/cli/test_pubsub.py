"""``splice topic`` / ``splice sub``'s pure parts: where a message comes from, headers, and what is printed.

The commands against a running cluster are in tests/e2e/test_pubsub_cli.py.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from splice.server.cli import build_parser, pubsub
from splice.server.cli.cluster import CliError


class Stdin(io.TextIOWrapper):
    """A text stdin over bytes, as ``sys.stdin`` is (``.buffer`` holds the bytes)."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(io.BytesIO(raw), encoding="utf-8")


def body(data: str | None = None, file: Path | None = None, stdin: bytes = b"", **kind: bool) -> dict[str, Any]:
    return pubsub.message_body(
        data, file, text=kind.get("text", False), binary=kind.get("binary", False), stdin=Stdin(stdin)
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"order": 1}', {"data": {"order": 1}}),
        ("[1, 2]", {"data": [1, 2]}),
        ("null", {"data": None}),
        ("-1.5", {"data": -1.5}),
        ('"text"', {"data": "text"}),
    ],
)
def test_data_given_is_json(data: str, expected: dict[str, Any]) -> None:
    assert body(data) == expected


def test_text_and_bytes_from_the_argument_stdin_or_a_file(tmp_path: Path) -> None:
    assert body("hello", text=True) == {"data": "hello"}
    assert body("-", stdin=b'{"a": 1}') == {"data": {"a": 1}}
    assert body("-", stdin="grüße\n".encode(), text=True) == {"data": "grüße\n"}
    assert body("-", stdin=b"\x00\xff", binary=True) == {"data_base64": "AP8="}
    file = tmp_path / "message.bin"
    file.write_bytes(b"\x00\xffbinary")
    assert body(file=file, binary=True) == {"data_base64": "AP9iaW5hcnk="}
    file.write_text('{"from": "file"}')
    assert body(file=file) == {"data": {"from": "file"}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "give the message once: DATA (JSON), '-' (stdin) or --file F"),
        ({"data": "1", "file": Path("x")}, "give the message once: DATA (JSON), '-' (stdin) or --file F"),
        ({"data": "{oops"}, "the message is not valid JSON (Expecting property name enclosed in double quotes"),
        ({"data": "-", "stdin": b"\xff\xfe"}, "the message is not UTF-8 text (byte 0): send it with --bytes"),
    ],
)
def test_a_message_that_cannot_be_sent_is_refused(args: dict[str, Any], message: str) -> None:
    with pytest.raises(CliError) as refused:
        body(**args)
    assert str(refused.value).startswith(message)
    assert refused.value.code == 2


def test_a_message_is_read_up_to_the_largest_a_topic_takes(tmp_path: Path) -> None:
    file = tmp_path / "big.bin"
    file.write_bytes(b"x" * (pubsub.MAX_MESSAGE + 1))
    with pytest.raises(CliError, match="larger than 16777216 bytes, the most any topic takes"):
        body(file=file, binary=True)
    with pytest.raises(CliError, match="larger than 16777216 bytes"):
        body("-", stdin=b"x" * (pubsub.MAX_MESSAGE + 1), binary=True)
    file.write_bytes(b"x" * pubsub.MAX_MESSAGE)
    assert len(body(file=file, binary=True)["data_base64"]) == 4 * -(-pubsub.MAX_MESSAGE // 3)


def test_headers() -> None:
    assert pubsub.headers(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(CliError, match="--header wants K=V, got 'a'"):
        pubsub.headers(["a"])
    with pytest.raises(CliError, match="--header a is given twice"):
        pubsub.headers(["a=1", "a=2"])


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.04, "0.0s"), (3.25, "3.2s"), (12.7, "12s"), (61, "1m"), (7200, "2h"), (3 * 86400 + 5, "3d")],
)
def test_ages(seconds: float | None, shown: str) -> None:
    assert pubsub.age(seconds) == shown


def test_what_a_publish_says() -> None:
    answer = {"id": 7, "topic": "t", "subscriptions": 2, "duplicate": False, "persistent": True}
    assert pubsub.published(answer, None) == "published message 7 to t: 2 subscriptions"
    assert pubsub.published({**answer, "subscriptions": 1}, None) == "published message 7 to t: 1 subscription"
    assert pubsub.published({**answer, "subscriptions": 0, "persistent": False}, None) == (
        "published to t (in memory): no subscription takes it, nothing was kept"
    )
    assert pubsub.published({**answer, "duplicate": True}, "k") == (
        "not enqueued again: key 'k' was published as message 7 within the topic's window"
    )


def test_tables_and_lines() -> None:
    topics = [
        {"name": "orders.created", "persistent": True, "subscriptions": ["a", "b"], "depth": 3, "oldest_age": 1.5}
    ]
    assert pubsub.topic_table(topics).splitlines() == [
        "NAME            PERSISTENT  SUBSCRIPTIONS  DEPTH  OLDEST",
        "orders.created  yes         2              3      1.5s",
    ]
    subs = [
        {"name": "s", "topic": "o.*", "service": None, "ready": None, "in_flight": 0, "dead": 2, "oldest_age": None}
    ]
    assert pubsub.sub_table(subs).splitlines()[1].split() == ["s", "o.*", "(pull)", "-", "0", "2", "-"]
    message = {"id": 17, "data": "x" * 200, "encoding": "json", "published_at": "2026-12-02T10:00:00+00:00"}
    row = {"delivery": 41, "attempt": 5, "message": message, "last_error": "boom"}
    line = pubsub.delivery_line(row)
    assert line.startswith('41  message 17  attempt 5  2026-12-02T10:00:00+00:00  "xxx')
    assert line.endswith("...  error: boom")
    binary = {**message, "data": "AP8=", "encoding": "base64"}
    assert pubsub.delivery_line({**row, "message": binary, "last_error": None}).endswith("  base64:AP8=")


def test_every_command_takes_its_cluster(tmp_path: Path) -> None:
    parser = build_parser()
    for argv in (
        ["topic", "list"],
        ["topic", "publish", "t", "1"],
        ["topic", "allow", "s", "--publish", "a", "b", "--publish", "c"],
        ["sub", "create", "s", "--topic", "t"],
        ["sub", "replay", "s", "--id", "1", "--id", "2"],
    ):
        args = parser.parse_args([*argv, "--cluster", str(tmp_path)])
        assert args.cluster == tmp_path
    allowed = parser.parse_args(["topic", "allow", "s", "--publish", "a", "b", "--publish", "c"])
    assert (allowed.publish, allowed.subscribe) == (["a", "b", "c"], [])
    assert parser.parse_args(["sub", "replay", "s", "--id", "1", "--id", "2"]).ids == [1, 2]


def test_the_command_reads_no_more_than_any_topic_takes() -> None:
    from splice.server.pubsub.specs import MAX_PAYLOAD

    assert pubsub.MAX_MESSAGE == MAX_PAYLOAD  # a copy: the command does not import the server's specs (pydantic)
