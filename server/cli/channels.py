"""``splice channel create|list|delete``: channels of every kind call services (rest, websocket, jsonrpc, amqp, file).

``splice channel create --cluster DIR --name N --path /orders/{id} --service S [--method GET]... [--security
SEC]`` makes a REST channel, the form scripts rely on. ``--kind`` picks another kind; its main fields have
flags (``--connection``, ``--queue``, ``--directory``, ``--services``) and the rest go in ``--option
KEY=VALUE`` (``max_message``, ``prefetch``, ``retries``, ...). Which fields a kind needs and takes is its
spec's business (``channels.specs``): a flag the kind does not take is refused here, before any call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import shtab

from ..client import ClientError
from . import commands
from .cluster import CliError

if TYPE_CHECKING:
    from pydantic import BaseModel

KINDS = ("rest", "websocket", "jsonrpc", "amqp", "file")
FLAGS = {
    "path": "--path",
    "service": "--service",
    "methods": "--method",
    "security": "--security",
    "connection": "--connection",
    "queue": "--queue",
    "directory": "--directory",
    "services": "--services",
}
"""A channel's fields that have a flag of their own (``--option`` takes the others)."""
DESTS = {"directory": "watched"}
"""Where a flag's value lands when its own name is taken (``args.directory`` is the cluster's)."""


def register(sub: Any, cluster_arg: Any) -> None:
    channel = sub.add_parser("channel", help="channels that call services: REST, WebSocket, JSON-RPC, AMQP, files")
    actions = channel.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a channel: REST (a path and methods) unless --kind says otherwise")
    cluster_arg(create)
    create.add_argument("--name", required=True)
    create.add_argument("--kind", choices=KINDS, default="rest", help="default rest")
    create.add_argument("--path", help="rest, websocket, jsonrpc: e.g. /orders/{id}")
    create.add_argument("--service", help="the service a request, message or file calls (not jsonrpc)")
    create.add_argument("--method", action="append", help="rest: an HTTP method; repeat for several (default GET)")
    create.add_argument("--security", help="rest, websocket, jsonrpc: name of a security definition")
    create.add_argument("--connection", help="amqp: the name of an amqp outgoing connection to consume on")
    create.add_argument("--queue", help="amqp: the queue to consume")
    directory = create.add_argument(
        "--directory", dest="watched", help="file: the directory to watch (relative: to the cluster's)"
    )
    directory.complete = shtab.DIRECTORY
    create.add_argument(
        "--services", nargs="+", metavar="PATTERN", help="jsonrpc: the services it may call (default '*', every one)"
    )
    create.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another field of the kind (max_message=65536, prefetch=20, retries=5, pattern='*.csv'); repeatable",
    )
    cluster_arg(actions.add_parser("list", help="every channel: its kind and where it takes calls from"))
    delete = actions.add_parser("delete", help="remove a channel")
    delete.add_argument("name")
    cluster_arg(delete)


def run(args: argparse.Namespace) -> int | None:
    if args.command != "channel":
        return None
    directory: Path = args.cluster
    if args.action == "create":
        answer = _create(args, directory)
        print(f"channel {answer['name']}: {summary(answer, secured=False)}")
        if answer.get("warning"):
            print(f"warning: {answer['warning']}", file=sys.stderr)
    elif args.action == "list":
        for row in commands.call(directory, "GET", "/splice/admin/channels")["channels"]:
            print(f"{row['name']}  {summary(row)}")
    else:
        commands.call(directory, "DELETE", f"/splice/admin/channels/{quote(args.name, safe='')}")
        print(f"deleted channel {args.name}")
    return 0


def body_of(args: argparse.Namespace) -> dict[str, Any]:
    """The admin API's body for ``channel create``: the flags given, checked against the kind's spec first so
    a flag of another kind or a missing one is named as a flag, not as a field."""
    spec = spec_of(args.kind)
    values = {field: getattr(args, DESTS.get(field, flag[2:])) for field, flag in FLAGS.items()}
    given = {field: value for field, value in values.items() if value is not None}
    fields = spec.model_fields
    stray = [FLAGS[field] for field in given if field not in fields]
    if stray:
        takes = " ".join(FLAGS[field] for field in FLAGS if field in fields)
        raise CliError(f"{' '.join(stray)}: not for {args.kind} channels (they take {takes} and --option)", 2)
    missing = [FLAGS[f] for f in FLAGS if f in fields and fields[f].is_required() and f not in given]
    if missing:
        raise CliError(f"{commands.a(args.kind)} channel needs {' and '.join(missing)}", 2)
    if args.kind == "rest":
        given.setdefault("methods", ["GET"])
    reserved = {field: f"give it as {flag}" for field, flag in FLAGS.items()}
    reserved |= {"name": "give it as --name", "kind": "give it as --kind"}
    body: dict[str, Any] = {"name": args.name}
    if args.kind != "rest":  # a REST channel's body stays what it always was
        body["kind"] = args.kind
    return body | given | commands.parse_options(args.option, spec, reserved)


def spec_of(kind: str) -> type[BaseModel]:
    """The spec of a channel kind (imported when a channel is made, not at every start of the command)."""
    from ..channels import specs

    models: dict[str, type[BaseModel]] = {
        "rest": specs.ChannelSpec,
        "websocket": specs.WebSocketChannel,
        "jsonrpc": specs.JsonRpcChannel,
        "amqp": specs.AmqpChannel,
        "file": specs.FileChannel,
    }
    return models[kind]


def _create(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    body = body_of(args)
    try:
        return commands.call(directory, "POST", "/splice/admin/channels", body)
    except ClientError as exc:
        raise (commands.unknown_option(exc, spec_of(args.kind), [*FLAGS, "name", "kind"]) or exc) from None


def summary(row: dict[str, Any], secured: bool = True) -> str:
    """Where a channel takes calls from and what it calls: ``GET /orders/{id} -> orders.get`` for REST (as it
    always read), ``websocket /ws -> chat.post``, ``amqp queue orders on rabbit -> orders.take``, ..."""
    kind = row.get("kind") or "rest"
    fields = {**row, **(row.get("options") or {})}
    security = f"  [security: {fields['security']}]" if secured and fields.get("security") else ""
    if kind == "rest":
        return f"{' '.join(fields['methods'])} {fields['path']} -> {fields['service']}{security}"
    if kind == "jsonrpc":
        return f"jsonrpc {fields['path']} -> {' '.join(fields['services'])}{security}"
    if kind == "amqp":
        return f"amqp queue {fields['queue']} on {fields['connection']} -> {fields['service']}"
    if kind == "file":
        return f"file {fields['directory']} ({fields['pattern']}) -> {fields['service']}"
    return f"{kind} {fields.get('path') or ''} -> {fields.get('service') or ''}{security}"


__all__ = ["FLAGS", "KINDS", "body_of", "register", "run", "spec_of", "summary"]
