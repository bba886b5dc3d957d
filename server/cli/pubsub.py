"""``splice topic ...`` and ``splice sub ...``: pub/sub topics, subscriptions and their queues, through the admin API.

``splice topic create NAME``, ``splice sub create NAME --topic PATTERN [--service S]`` (none: a pull queue),
``splice topic publish NAME '{"order": 1}'`` (or ``--file F``, or ``-`` for stdin; ``--text``, ``--bytes``),
``splice sub peek|purge|dead|replay NAME``, ``splice topic allow SECURITY --publish P... --subscribe P...``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, urlencode

from . import commands
from .cluster import CliError

MAX_MESSAGE = 16 * 1024 * 1024
"""The largest message any topic takes (``pubsub.specs.MAX_PAYLOAD``): a file or stdin is read up to it, no more."""
SHOWN = 100
"""How many characters of a message's data a line of ``peek`` or ``dead`` shows."""


def register(sub: Any, cluster_arg: Any) -> None:
    _register_topic(sub, cluster_arg)
    _register_sub(sub, cluster_arg)


def _register_topic(sub: Any, cluster_arg: Any) -> None:
    topic = sub.add_parser("topic", help="pub/sub topics: create, list, publish, permissions").add_subparsers(
        dest="action", required=True
    )
    create = topic.add_parser("create", help="a new topic (persistent unless --not-persistent)")
    create.add_argument("name", help="dot-separated, e.g. orders.created")
    cluster_arg(create)
    create.add_argument(
        "--not-persistent", action="store_true", help="keep messages in memory only: faster, lost if a server stops"
    )
    create.add_argument("--max-payload", type=int, metavar="BYTES", help="a larger message is refused (default 1 MiB)")
    create.add_argument("--max-depth", type=int, metavar="N", help="messages waiting per subscription at most")
    create.add_argument("--expiry", type=float, metavar="SECONDS", help="how long a message lives (default: forever)")
    create.add_argument("--idempotency-window", type=float, metavar="SECONDS", help="how long keys are remembered")
    create.add_argument("--replace", action="store_true", help="change the topic of that name if there is one")
    listing = topic.add_parser("list", help="every topic: persistent, subscriptions, depth, oldest message's age")
    cluster_arg(listing)
    listing.add_argument("--json", action="store_true")
    show = topic.add_parser("show", help="one topic in full")
    show.add_argument("name")
    cluster_arg(show)
    show.add_argument("--json", action="store_true")
    delete = topic.add_parser("delete", help="remove a topic no subscription names")
    delete.add_argument("name")
    cluster_arg(delete)
    publish = topic.add_parser(
        "publish",
        help="publish a message: JSON given, from --file F, or from stdin (-)",
        description="Publish DATA (JSON) to topic NAME; '-' reads it from stdin, --file from a file. --text takes"
        " the data as text instead of JSON, --bytes as bytes.",
    )
    publish.add_argument("name")
    publish.add_argument("data", nargs="?", help="the message as JSON; '-' reads stdin")
    cluster_arg(publish)
    publish.add_argument("--file", type=Path, metavar="F", help="read the message from this file")
    kind = publish.add_mutually_exclusive_group()
    kind.add_argument("--text", action="store_true", help="the data is text (a JSON string), not JSON")
    kind.add_argument("--bytes", action="store_true", help="the data is bytes (sent base64-encoded)")
    publish.add_argument("--key", help="idempotency key: a repeat within the topic's window is not enqueued")
    publish.add_argument("--priority", type=int, help="higher is delivered first (default 0)")
    publish.add_argument("--expiry", type=float, metavar="SECONDS", help="how long the message lives")
    publish.add_argument("--header", action="append", default=[], metavar="K=V", help="a header; repeat for several")
    publish.add_argument("--json", action="store_true")
    allow = topic.add_parser("allow", help="what callers of a security definition may publish and subscribe to")
    allow.add_argument("security", help="the security definition's name")
    cluster_arg(allow)
    allow.add_argument("--publish", nargs="+", action="extend", default=[], metavar="P", help="topics or patterns")
    allow.add_argument("--subscribe", nargs="+", action="extend", default=[], metavar="P", help="topics or patterns")
    disallow = topic.add_parser("disallow", help="take every topic permission of a security definition away")
    disallow.add_argument("security")
    cluster_arg(disallow)
    permissions = topic.add_parser("permissions", help="what each security definition may publish and subscribe to")
    cluster_arg(permissions)
    permissions.add_argument("--json", action="store_true")


def _register_sub(sub: Any, cluster_arg: Any) -> None:
    subs = sub.add_parser("sub", help="pub/sub subscriptions and their queues").add_subparsers(
        dest="action", required=True
    )
    create = subs.add_parser("create", help="a push subscription (--service) or a pull queue (none)")
    create.add_argument("name")
    cluster_arg(create)
    create.add_argument("--topic", required=True, metavar="PATTERN", help="a topic, or a pattern: orders.*, orders.**")
    create.add_argument("--service", help="invoke this service per message (without: a pull queue)")
    create.add_argument("--unordered", action="store_true", help="deliver in parallel, not one at a time in order")
    create.add_argument("--concurrency", type=int, metavar="N", help="unordered: deliveries at once per server")
    create.add_argument("--delivery-limit", type=int, metavar="N", help="attempts before dead-lettering (default 5)")
    create.add_argument("--backoff", type=float, metavar="SECONDS", help="before the first retry; doubles")
    create.add_argument("--lease", type=float, metavar="SECONDS", help="how long a delivery stays claimed")
    create.add_argument("--replace", action="store_true", help="change the subscription of that name if there is one")
    listing = subs.add_parser("list", help="every subscription: waiting, in flight, dead, oldest message's age")
    cluster_arg(listing)
    listing.add_argument("--json", action="store_true")
    for action, text in (
        ("show", "one subscription in full"),
        ("delete", "remove a subscription and every message waiting in it"),
        ("peek", "the messages waiting, oldest first (not taken)"),
        ("purge", "delete the messages waiting (--dead: the dead letters)"),
        ("dead", "the dead letters, with their last error"),
        ("replay", "deliver dead letters again (--id: only these)"),
    ):
        command = subs.add_parser(action, help=text)
        command.add_argument("name")
        cluster_arg(command)
        if action in ("show", "peek", "dead"):
            command.add_argument("--json", action="store_true")
        if action in ("peek", "dead"):
            command.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    purge = subs.choices["purge"]
    purge.add_argument("--dead", action="store_true", help="the dead letters instead of the messages waiting")
    replay = subs.choices["replay"]
    replay.add_argument("--id", type=int, action="append", dest="ids", metavar="ID", help="a dead delivery's id")


def run(args: argparse.Namespace) -> int | None:
    if args.command == "topic":
        return _topic(args, args.cluster)
    if args.command == "sub":
        return _sub(args, args.cluster)
    return None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# -- topics -----------------------------------------------------------------------------------------------


def _topic(args: argparse.Namespace, directory: Path) -> int:
    if args.action == "create":
        return _create_topic(args, directory)
    if args.action == "list":
        rows = commands.call(directory, "GET", "/splice/admin/topics")["topics"]
        if args.json or rows:
            print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else topic_table(rows))
        return 0
    if args.action == "publish":
        return _publish(args, directory)
    if args.action in ("allow", "disallow", "permissions"):
        return _permissions(args, directory)
    path = f"/splice/admin/topics/{quote(args.name, safe='')}"
    if args.action == "show":
        row = commands.call(directory, "GET", path)
        print(json.dumps(row, indent=2, ensure_ascii=False) if args.json else describe("topic", row))
        return 0
    answer = commands.call(directory, "DELETE", path)
    print("\n".join([f"deleted topic {args.name}", *commands.server_lines(answer)]))
    return 0


def _create_topic(args: argparse.Namespace, directory: Path) -> int:
    body: dict[str, Any] = {"name": args.name}
    if args.not_persistent:
        body["persistent"] = False
    for key in ("max_payload", "max_depth", "expiry", "idempotency_window"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    _put(directory, "topic", "topics", body, args.replace)
    return 0


def _put(directory: Path, what: str, collection: str, body: dict[str, Any], replace: bool) -> dict[str, Any]:
    """Create (POST) or, with ``replace``, create or change (PUT) a topic or subscription; print what it became."""
    path = f"/splice/admin/{collection}/{quote(body['name'], safe='')}" if replace else f"/splice/admin/{collection}"
    answer: dict[str, Any] = commands.call(directory, "PUT" if replace else "POST", path, body)
    done = "created" if answer["created"] else "changed"
    print("\n".join([f"{done} {describe(what, answer[what])}", *commands.server_lines(answer)]))
    return answer


def _publish(args: argparse.Namespace, directory: Path) -> int:
    body = message_body(args.data, args.file, text=args.text, binary=args.bytes, stdin=sys.stdin)
    body["headers"] = headers(args.header)
    for key in ("key", "priority", "expiry"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    answer = commands.call(directory, "POST", f"/splice/admin/topics/{quote(args.name, safe='')}/publish", body)
    if args.json:
        _print_json(answer)
    else:
        print(published(answer, args.key))
    return 0


def message_body(data: str | None, file: Path | None, *, text: bool, binary: bool, stdin: IO[str]) -> dict[str, Any]:
    """The ``data`` (JSON, or text as a JSON string) or ``data_base64`` (``binary``) of a publish, from DATA,
    ``-`` (stdin) or ``--file``: exactly one of them."""
    if (data is None) == (file is None):
        raise CliError("give the message once: DATA (JSON), '-' (stdin) or --file F", 2)
    raw = _read(file, stdin) if file is not None or data == "-" else (data or "").encode()
    if binary:
        return {"data_base64": base64.b64encode(raw).decode()}
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"the message is not UTF-8 text (byte {exc.start}): send it with --bytes", 2) from None
    if text:
        return {"data": decoded}
    try:
        return {"data": json.loads(decoded)}
    except ValueError as exc:
        raise CliError(f"the message is not valid JSON ({exc}): send text with --text, bytes with --bytes", 2) from None


def _read(file: Path | None, stdin: IO[str]) -> bytes:
    """A file's or stdin's bytes, refused past ``MAX_MESSAGE`` without reading more."""
    try:
        if file is None:
            raw = stdin.buffer.read(MAX_MESSAGE + 1) if hasattr(stdin, "buffer") else stdin.read().encode()
        else:
            with file.open("rb") as opened:
                raw = opened.read(MAX_MESSAGE + 1)
    except OSError as exc:
        raise CliError(f"cannot read {file or 'stdin'}: {exc.strerror or exc}", 2) from None
    if len(raw) > MAX_MESSAGE:
        raise CliError(f"the message is larger than {MAX_MESSAGE} bytes, the most any topic takes", 2)
    return raw


def headers(pairs: Sequence[str]) -> dict[str, str]:
    """``--header K=V`` pairs as a mapping; a pair without ``=`` or a key given twice is refused."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise CliError(f"--header wants K=V, got {pair!r}", 2)
        if key.strip() in found:
            raise CliError(f"--header {key.strip()} is given twice", 2)
        found[key.strip()] = value
    return found


def published(answer: dict[str, Any], key: str | None) -> str:
    """What a publish did, in a line."""
    if answer["duplicate"]:
        return f"not enqueued again: key {key!r} was published as message {answer['id']} within the topic's window"
    where = "" if answer["persistent"] else " (in memory)"
    if not answer["subscriptions"]:
        return f"published to {answer['topic']}{where}: no subscription takes it, nothing was kept"
    count = answer["subscriptions"]
    return f"published message {answer['id']} to {answer['topic']}{where}: {count} subscription{'s' * (count != 1)}"


def _permissions(args: argparse.Namespace, directory: Path) -> int:
    if args.action == "permissions":
        rows = commands.call(directory, "GET", "/splice/admin/topic-permissions")["permissions"]
        if args.json:
            _print_json(rows)
        for row in [] if args.json else rows:
            print(f"{row['security']}  {permission_text(row)}")
        return 0
    path = f"/splice/admin/topic-permissions/{quote(args.security, safe='')}"
    if args.action == "disallow":
        answer = commands.call(directory, "DELETE", path)
        lines = [f"security definition {args.security} may no longer publish or subscribe to any topic"]
        print("\n".join([*lines, *commands.server_lines(answer)]))
        return 0
    if not args.publish and not args.subscribe:
        raise CliError("give the topics it may use: --publish P ... and/or --subscribe P ...", 2)
    answer = commands.call(directory, "PUT", path, {"publish": args.publish, "subscribe": args.subscribe})
    lines = [f"security definition {args.security} {permission_text(answer['permission'])}"]
    print("\n".join([*lines, *commands.server_lines(answer)]))
    return 0


def permission_text(row: dict[str, Any]) -> str:
    publish = ", ".join(row["publish"]) or "nothing"
    subscribe = ", ".join(row["subscribe"]) or "nothing"
    return f"may publish to {publish}; subscribe to {subscribe}"


# -- subscriptions ----------------------------------------------------------------------------------------


def _sub(args: argparse.Namespace, directory: Path) -> int:
    if args.action == "create":
        return _create_sub(args, directory)
    if args.action == "list":
        rows = commands.call(directory, "GET", "/splice/admin/subscriptions")["subscriptions"]
        if args.json or rows:
            print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else sub_table(rows))
        return 0
    path = f"/splice/admin/subscriptions/{quote(args.name, safe='')}"
    if args.action == "show":
        row = commands.call(directory, "GET", path)
        print(json.dumps(row, indent=2, ensure_ascii=False) if args.json else describe("subscription", row))
    elif args.action == "delete":
        answer = commands.call(directory, "DELETE", path)
        print("\n".join([f"deleted subscription {args.name} and its messages", *commands.server_lines(answer)]))
    elif args.action in ("peek", "dead"):
        query = {"limit": args.limit}
        answer = commands.call(
            directory, "GET", f"{path}/{'messages' if args.action == 'peek' else 'dead'}?{urlencode(query)}"
        )
        rows = answer["messages" if args.action == "peek" else "dead"]
        if args.json:
            _print_json(rows)
        else:
            print("\n".join(delivery_line(row) for row in rows) or f"no {_what(args.action)} in {args.name}")
    elif args.action == "purge":
        state = "dead" if args.dead else "ready"
        answer = commands.call(directory, "POST", f"{path}/purge?state={state}")
        print(f"purged {answer['purged']} {_what('dead' if args.dead else 'peek')} from subscription {args.name}")
    else:
        answer = commands.call(directory, "POST", f"{path}/replay", {"ids": args.ids} if args.ids else {})
        print(f"replayed {answer['replayed']} dead letters of subscription {args.name}")
    return 0


def _what(action: str) -> str:
    return "dead letters" if action == "dead" else "messages waiting"


def _create_sub(args: argparse.Namespace, directory: Path) -> int:
    body: dict[str, Any] = {"name": args.name, "topic": args.topic}
    if args.service is not None:
        body["service"] = args.service
    if args.unordered:
        body["ordered"] = False
    for key in ("concurrency", "delivery_limit", "backoff", "lease"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    answer = _put(directory, "subscription", "subscriptions", body, args.replace)
    for warning in answer.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    return 0


# -- what is printed --------------------------------------------------------------------------------------


def age(seconds: float | None) -> str:
    """An age as people read it: ``-``, ``0.4s``, ``12s``, ``5m``, ``3h``, ``2d``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def table(lines: Sequence[tuple[str, ...]]) -> str:
    """Columns aligned on their widest cell, the last one left ragged."""
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]) - 1)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[-1]]) for line in lines)


def topic_table(rows: list[dict[str, Any]]) -> str:
    lines = [("NAME", "PERSISTENT", "SUBSCRIPTIONS", "DEPTH", "OLDEST")]
    for row in rows:
        persistent = "yes" if row["persistent"] else "no"
        lines.append(
            (row["name"], persistent, str(len(row["subscriptions"])), _count(row["depth"]), age(row["oldest_age"]))
        )
    return table(lines)


def sub_table(rows: list[dict[str, Any]]) -> str:
    lines = [("NAME", "TOPIC", "SERVICE", "READY", "IN-FLIGHT", "DEAD", "OLDEST")]
    for row in rows:
        queue = (_count(row["ready"]), _count(row["in_flight"]), _count(row["dead"]), age(row["oldest_age"]))
        lines.append((row["name"], row["topic"], row["service"] or "(pull)", *queue))
    return table(lines)


def describe(what: str, row: dict[str, Any]) -> str:
    """A topic or subscription in full, one field a line."""
    fields = {key: value for key, value in row.items() if key != "name"}
    width = max(map(len, fields), default=0)
    lines = [f"{what} {row['name']}"]
    for key, value in fields.items():
        if key == "oldest_age":
            shown = age(value)
        elif isinstance(value, list):
            shown = ", ".join(map(str, value)) or "-"
        else:
            shown = "-" if value is None else value if isinstance(value, str) else json.dumps(value)
        lines.append(f"  {key.ljust(width)}  {shown}")
    return "\n".join(lines)


def delivery_line(row: dict[str, Any]) -> str:
    """``41  message 17  attempt 1  2026-12-02T10:00:00+00:00  {"order": 1}`` (and the last error of a dead one)."""
    message = row["message"]
    data = message["data"] if message["encoding"] == "json" else f"base64:{message['data']}"
    shown = data if isinstance(data, str) and message["encoding"] != "json" else json.dumps(data, ensure_ascii=False)
    if len(shown) > SHOWN:
        shown = shown[: SHOWN - 3] + "..."
    parts = [
        str(row["delivery"]),
        f"message {message['id']}",
        f"attempt {row['attempt']}",
        message["published_at"] or "-",
    ]
    parts.append(shown)
    if row.get("last_error"):
        parts.append(f"error: {row['last_error']}")
    return "  ".join(parts)


__all__ = [
    "age",
    "delivery_line",
    "describe",
    "headers",
    "message_body",
    "permission_text",
    "published",
    "register",
    "run",
    "sub_table",
    "topic_table",
]
