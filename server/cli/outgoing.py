"""``splice outgoing create|list|show|delete|ping``: the connections services call (``self.out.rest["up"]``).

``splice outgoing create --cluster DIR --name N --kind rest|sql|redis|amqp --address URL [--username U]
[--option KEY=VALUE]... [--replace]`` is the form scripts rely on. Secrets never go on the command line,
where ``ps`` and the shell's history would keep them: ``--password-env VAR``, ``--key-env VAR`` and
``--token-env VAR`` name an environment variable holding one, ``--password-prompt`` asks for the password,
and ``$SPLICE_SECRET`` is the kind's first secret when none of these is given (as for ``splice security
create``). The server keeps them encrypted with the cluster key and shows each as ``***``.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..client import ClientError
from ..core.outgoing import KIND_NAMES
from . import commands
from .cluster import CliError

SECRETS = ("password", "key", "token")
"""Every secret a kind may take; each kind's spec says which it takes (``SECRETS``), its first is the default."""
MASK = "***"
FLAGGED = {
    "name": "give it as --name",
    "kind": "give it as --kind",
    "address": "give it as --address",
    "username": "give it as --username",
    **{secret: f"a secret never goes on the command line: use --{secret}-env VAR" for secret in SECRETS},
}
"""Fields ``--option`` must not set, and what to use instead."""


def register(sub: Any, cluster_arg: Any) -> None:
    outgoing = sub.add_parser(
        "outgoing", help="outgoing connections services call: REST, SQL, Redis, AMQP (self.out)"
    ).add_subparsers(dest="action", required=True)
    create = outgoing.add_parser(
        "create",
        help="define a connection (secrets from the environment or a prompt)",
        description="Define an outgoing connection. Secrets never go on the command line: name the environment"
        " variable holding one (--password-env, --key-env, --token-env) or use --password-prompt; without"
        " either, $SPLICE_SECRET is the kind's first secret (password).",
    )
    cluster_arg(create)
    create.add_argument("--name", required=True)
    create.add_argument("--kind", choices=KIND_NAMES, required=True)
    create.add_argument("--address", required=True, help="a URL or DSN, without a password")
    create.add_argument("--username")
    for secret in SECRETS:
        create.add_argument(
            f"--{secret}-env", metavar="VAR", help=f"the environment variable holding the {secret} (never the value)"
        )
    create.add_argument("--password-prompt", action="store_true", help="ask for the password")
    create.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='any other field of the kind (timeout=5, verify=false, headers=\'{"X-A": "b"}\'); repeat for several',
    )
    create.add_argument(
        "--replace",
        action="store_true",
        help="change the connection of that name if there is one (secrets not given are kept)",
    )
    listing = outgoing.add_parser("list", help="every connection: name, kind, address, which secrets are set")
    cluster_arg(listing)
    listing.add_argument("--json", action="store_true")
    for action, text in (
        ("show", "one connection in full (secrets as ***)"),
        ("delete", "remove a connection"),
        ("ping", "reach the connection's remote system from every server; exit 1 if one fails"),
    ):
        command = outgoing.add_parser(action, help=text)
        command.add_argument("name")
        cluster_arg(command)
        if action != "delete":
            command.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int | None:
    if args.command != "outgoing":
        return None
    directory: Path = args.cluster
    if args.action == "create":
        return _create(args, directory, os.environ)
    if args.action == "list":
        rows = commands.call(directory, "GET", "/splice/admin/outgoing")["outgoing"]
        if args.json or rows:  # nothing at all when there is none, as 'channel list'
            print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else table(rows))
        return 0
    path = f"/splice/admin/outgoing/{quote(args.name, safe='')}"
    if args.action == "show":
        row = commands.call(directory, "GET", path)
        print(json.dumps(row, indent=2, ensure_ascii=False) if args.json else describe(row))
        return 0
    if args.action == "delete":
        answer = commands.call(directory, "DELETE", path)
        print("\n".join([f"deleted outgoing connection {args.name}", *commands.server_lines(answer)]))
        return 0
    answer = commands.call(directory, "POST", f"{path}/ping")
    print(json.dumps(answer, indent=2, ensure_ascii=False) if args.json else "\n".join(ping_lines(answer)))
    return 0 if answer["ok"] else 1


def secrets_of(args: argparse.Namespace, taken: tuple[str, ...], environ: Mapping[str, str]) -> dict[str, str]:
    """The secrets to send: from the variables named, the prompt, or ``$SPLICE_SECRET`` as the first of
    ``taken`` (the kind's secrets) when none is named."""
    found: dict[str, str] = {}
    asked = [secret for secret in SECRETS if getattr(args, f"{secret}_env") is not None]
    asked += ["password"] * bool(args.password_prompt)
    for secret in asked:
        if secret not in taken:
            raise CliError(f"{commands.a(args.kind)} connection takes no {secret} (it takes: {', '.join(taken)})", 2)
        if secret in found:
            raise CliError(f"give the {secret} once: --{secret}-env or --{secret}-prompt", 2)
        if secret == "password" and args.password_prompt and args.password_env is None:
            value = getpass.getpass(f"password of outgoing connection {args.name}: ")
        else:
            variable = getattr(args, f"{secret}_env")
            value = environ.get(variable, "")
            if not value:
                raise CliError(f"--{secret}-env {variable}: that environment variable is not set or empty", 2)
        if not value:
            raise CliError(f"no {secret} given", 2)
        found[secret] = value
    if not asked and environ.get("SPLICE_SECRET"):
        found[taken[0]] = environ["SPLICE_SECRET"]
    return found


def _create(args: argparse.Namespace, directory: Path, environ: Mapping[str, str]) -> int:
    from ..connections import KINDS

    spec = KINDS[args.kind].spec
    body: dict[str, Any] = {"name": args.name, "kind": args.kind, "address": args.address}
    if args.username is not None:
        body["username"] = args.username
    body |= commands.parse_options(args.option, spec, FLAGGED)
    body |= secrets_of(args, spec.SECRETS, environ)
    path = f"/splice/admin/outgoing/{quote(args.name, safe='')}" if args.replace else "/splice/admin/outgoing"
    try:
        answer = commands.call(directory, "PUT" if args.replace else "POST", path, body)
    except ClientError as exc:
        raise (commands.unknown_option(exc, spec, list(FLAGGED)) or exc) from None
    done = "created" if answer["created"] else "changed"
    print("\n".join([f"{done} {describe(answer['outgoing'])}", *commands.server_lines(answer)]))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    """One line per connection: name, kind, address, and which secrets are set (``-`` for none)."""
    lines = [("NAME", "KIND", "ADDRESS", "SECRETS")]
    for row in rows:
        secrets = ",".join(secret for secret in SECRETS if row.get(secret) == MASK) or "-"
        lines.append((row["name"], row["kind"], row["address"], secrets))
    widths = [max(len(line[column]) for line in lines) for column in range(3)]
    return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(line, widths, strict=False)), line[3]]) for line in lines)


def describe(row: dict[str, Any]) -> str:
    """A connection in full, one field a line, values written as ``--option`` takes them (JSON but for text)."""
    fields = {key: value for key, value in row.items() if key not in ("name", "kind")}
    width = max(map(len, fields), default=0)
    lines = [f"outgoing connection {row['name']} ({row['kind']})"]
    for key, value in fields.items():
        shown = "-" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"  {key.ljust(width)}  {shown}")
    return "\n".join(lines)


def ping_lines(answer: dict[str, Any]) -> list[str]:
    """``server1  ok     3.2 ms  PostgreSQL 16.4`` or ``server2  FAIL  10.1 ms  <error>``, one per server."""
    width = max((len(result["server"]) for result in answer["servers"]), default=0)
    lines = []
    for result in answer["servers"]:
        state = "ok" if result["ok"] else "FAIL"
        said = result.get("detail") if result["ok"] else result.get("error")
        lines.append(
            f"{result['server'].ljust(width)}  {state:<4}  {result.get('ms', 0.0):7.1f} ms  {said or ''}".rstrip()
        )
    return lines


__all__ = ["SECRETS", "describe", "ping_lines", "register", "run", "secrets_of", "table"]
