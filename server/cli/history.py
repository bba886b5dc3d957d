"""``splice history``, ``splice rollback`` and ``splice apply``: deployment history and configuration as code.

A command module of the ``splice`` command (see ``EXTENSIONS``): ``register`` adds the sub-commands,
``run`` carries one out. Each is a client of the admin API; ``apply`` reads the secrets a declaration
file names from this process's environment and sends only those.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..client import ClientError
from . import commands
from .cluster import CliError

COMMANDS = ("history", "rollback", "apply")
_MODULE_HELP = "a file (relative to --root, like 'splice deploy') or a module path such as billing/orders.py"


def register(sub: Any, cluster_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    history = sub.add_parser("history", help="every version of a deployed module")
    history.add_argument("module", metavar="MODULE", help=_MODULE_HELP)
    cluster_arg(history)
    history.add_argument("--root", type=Path, default=Path("."), help="the project root (default: .)")
    history.add_argument("--json", action="store_true")

    rollback = sub.add_parser("rollback", help="deploy a stored version of a module again, on every server")
    rollback.add_argument("module", metavar="MODULE", help=_MODULE_HELP)
    rollback.add_argument("--to", type=_version, required=True, metavar="VERSION", help="the version, e.g. 2 or v2")
    cluster_arg(rollback)
    rollback.add_argument("--root", type=Path, default=Path("."), help="the project root (default: .)")

    apply = sub.add_parser(
        "apply",
        help="apply a declaration file (security, outgoing connections, channels, jobs, topics, subscriptions, caches)",
    )
    apply.add_argument("file", type=Path, metavar="FILE", help="e.g. splice.toml")
    cluster_arg(apply)
    apply.add_argument(
        "--prune",
        action="store_true",
        help="also delete what the file does not declare (channels, security, outgoing connections, jobs)",
    )
    apply.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")


def run(args: argparse.Namespace) -> int | None:
    if args.command == "history":
        return _history(args)
    if args.command == "rollback":
        return _rollback(args)
    if args.command == "apply":
        return _apply(args)
    return None


def _version(text: str) -> int:
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit() or int(digits) < 1:
        raise argparse.ArgumentTypeError(f"not a version: {text!r} (give a number such as 2 or v2)")
    return int(digits)


def module_path(given: str, root: Path) -> str:
    """The module path (relative to the project root) that ``given`` names.

    ``given`` is a file (relative to the working directory, inside ``root``; it need not exist any more), a
    module path relative to the root (``billing/orders.py``) or a dotted module name (``billing.orders``).
    """
    candidate = Path(given)
    if not given.endswith(".py") and "/" not in given and os.sep not in given and not candidate.exists():
        return given.replace(".", "/") + ".py"
    resolved_root = root.resolve()
    try:
        return candidate.resolve().relative_to(resolved_root).as_posix()
    except ValueError:
        pass
    if candidate.exists() or candidate.is_absolute() or ".." in candidate.parts:
        raise CliError(f"{given}: not inside the project root {resolved_root} (use --root)")
    return candidate.as_posix()


# -- history and rollback ------------------------------------------------------------------------------------


def _history(args: argparse.Namespace) -> int:
    path = module_path(args.module, args.root)
    answer = commands.call(args.cluster, "GET", f"/splice/admin/modules/{path}/history")
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    current = answer.get("current")
    print(f"{answer['path']}: " + (f"v{current} is deployed" if current else "not deployed now"))
    rows = [["", "VERSION", "ACTION", "SEQUENCE", "WHEN", "WHO", "ORIGIN", "SHA256"]]
    for entry in answer["versions"]:
        rows.append(
            [
                "*" if entry["version"] == current else "",
                f"v{entry['version']}",
                entry["action"],
                str(entry["sequence"]),
                _when(entry.get("deployed_at") or ""),
                entry.get("deployed_by") or "-",
                entry.get("origin") or "-",
                (entry.get("sha256") or "-")[:12],
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return iso or "-"


def _rollback(args: argparse.Namespace) -> int:
    path = module_path(args.module, args.root)
    body = {"path": path, "version": args.to, "deployed_by": commands._who()}
    try:
        answer = commands.client_for(args.cluster).call("POST", "/splice/admin/rollback", body)
    except ClientError as exc:
        if not exc.body.get("error", {}).get("problems"):
            raise
        print("\n".join(commands._problems(exc, {})), file=sys.stderr)
        return 1
    services = ", ".join(answer["modules"][0]["services"]) or "no services"
    print(f"rolled back {path} to v{answer['rolled_back_to']}: now v{answer['version']} ({services})")
    return _servers(answer, "rollback")


def _servers(answer: dict[str, Any], what: str) -> int:
    """Print each server's outcome; 3 if one did not confirm (it catches up from the ODB when it can)."""
    for server in answer["servers"]:
        detail = f"sequence {server['sequence']}" if server.get("sequence") is not None else ""
        if server.get("error"):
            detail = server["error"]
        print(f"  {server['server']}: {server['status']}" + (f" ({detail})" if detail else ""))
    if answer["status"] == "partial":
        print(f"splice: the {what} did not reach every server (they catch up from the ODB)", file=sys.stderr)
        return 3
    return 0


# -- apply ---------------------------------------------------------------------------------------------------


def _apply(args: argparse.Namespace) -> int:
    file: Path = args.file
    try:
        text = file.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CliError(f"{file}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{file}: not valid UTF-8 at byte {exc.start}") from None
    except OSError as exc:
        raise CliError(f"{file}: cannot read it: {exc.strerror}") from None
    # Here, not at the top: the reader's models import pydantic, which every other command can do without.
    from ..declare.reader import DeclarationError, parse, resolve_secrets

    try:
        declaration = parse(text, str(file))
        resolve_secrets(declaration, os.environ, "the environment of splice apply")
    except DeclarationError as exc:
        print("\n".join(str(p) for p in exc.problems), file=sys.stderr)
        return 1
    secrets = {name: os.environ[name] for name in declaration.secret_names()}
    body = {
        "file": str(file),
        "text": text,
        "secrets": secrets,
        "prune": args.prune,
        "dry_run": args.dry_run,
        "applied_by": commands._who(),
    }
    try:
        answer = commands.client_for(args.cluster).call("POST", "/splice/admin/apply", body)
    except ClientError as exc:
        problems = exc.body.get("error", {}).get("problems")
        if not problems:
            raise
        print("\n".join(_problem(p) for p in problems), file=sys.stderr)
        return 1
    return _report(answer, str(file))


def _problem(problem: dict[str, Any]) -> str:
    where = str(problem.get("file") or "")
    if problem.get("line") is not None:
        where += f":{problem['line']}"
        if problem.get("column") is not None:
            where += f":{problem['column']}"
    field = f"{problem['field']}: " if problem.get("field") else ""
    return f"{where}: {field}{problem['message']}"


def _report(answer: dict[str, Any], file: str) -> int:
    for warning in answer.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    verb = {"create": "would create", "update": "would update", "delete": "would delete"} if answer["dry_run"] else {}
    for change in answer["changes"]:
        if change["action"] == "unchanged":
            continue
        shown = {"security": "security definition", "outgoing": "outgoing connection"}
        what = {**shown, "topic_permission": "topic permissions of"}.get(change["kind"], change["kind"])
        fields = f" ({', '.join(change['fields'])})" if change["fields"] else ""
        print(f"{file}: {verb.get(change['action'], change['action'])} {what} {change['name']}{fields}")
    counts = answer["counts"]
    summary = f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted"
    summary += f", {counts['unchanged']} unchanged"
    if answer["status"] == "unchanged":
        print(f"{file}: no change, the cluster already holds it ({counts['unchanged']} objects unchanged)")
        return 0
    if answer["dry_run"]:
        print(f"{file}: dry run, nothing was changed (would be: {summary})")
        return 0
    print(f"{file}: applied: {summary}")
    return _servers(answer, "change")
