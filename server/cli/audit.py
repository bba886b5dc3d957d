"""``splice audit``: who did what to the cluster, and when (the admin API's audit log)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from . import commands


def register(sub: Any, cluster_arg: Callable[..., None]) -> None:
    audit = sub.add_parser(
        "audit", help="the audit log: every admin action that may change something (when, who, what, status)"
    )
    cluster_arg(audit)
    audit.add_argument("--limit", type=_limit, default=50, help="how many, newest first (default 50, at most 1000)")
    audit.add_argument("--actor", help="only this actor's actions, e.g. cli:ann or dashboard:bob")
    audit.add_argument("--path", help="only actions on admin paths starting with this, e.g. /splice/admin/deploy")
    audit.add_argument("--since", help="only actions at or after this moment (ISO-8601, e.g. 2026-12-03T10:00)")
    audit.add_argument("--json", action="store_true", help="the admin API's answer as it is")


def run(args: argparse.Namespace) -> int | None:
    if args.command != "audit":
        return None
    query: dict[str, str | int] = {"limit": args.limit}
    for key in ("actor", "path", "since"):
        if getattr(args, key):
            query[key] = getattr(args, key)
    answer = commands.call(args.cluster, "GET", "/splice/admin/audit?" + urlencode(query))
    if args.json:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0
    entries = answer["entries"]
    if not entries:
        print("no admin actions recorded" + (" that match" if len(query) > 1 else ""))
        return 0
    rows = [["WHEN", "WHO", "WHAT", "STATUS", "SERVER", "CID"]]
    for entry in entries:
        rows.append(
            [
                _when(entry["at"]),
                entry["actor"],
                f"{entry['method']} {entry['path']}",
                str(entry["status"]),
                entry["server"],
                entry["cid"],
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 1000, got {text!r}")
    return int(text)


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    except ValueError:
        return iso or "-"


__all__ = ["register", "run"]
