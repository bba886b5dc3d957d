"""``splice cache list|get|set|delete|keys|clear``: the cluster's caches from the command line.

Entries are read and changed through the first server that answers; a change reaches every server as one made
by a service does. ``splice cache set KEY VALUE`` takes VALUE as JSON (``42``, ``true``, ``'{"a": 1}'``) and as a
plain string when it is not JSON (``hello``); ``--text`` takes it as a string always. Every command but ``list``
acts on ``--cache NAME`` (default: ``default``).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from . import commands

DEFAULT = "default"


def register(sub: Any, cluster_arg: Any) -> None:
    cache = sub.add_parser("cache", help="the cluster's caches: list, get, set, delete, keys, clear").add_subparsers(
        dest="action", required=True
    )
    listing = cache.add_parser("list", help="every cache, with its entries, bytes, hits and misses on one server")
    cluster_arg(listing)
    listing.add_argument("--json", action="store_true")

    def command(action: str, text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = cache.add_parser(action, help=text)
        cluster_arg(parser)
        parser.add_argument("--cache", dest="cache_name", default=DEFAULT, metavar="NAME", help="default: default")
        return parser

    get = command("get", "print an entry's value as JSON (exit 1 if there is none)")
    get.add_argument("key")
    put = command("set", "set an entry on every server (VALUE is JSON, else a string)")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--expiry", type=float, metavar="SECONDS", help="default: the cache's own")
    put.add_argument("--text", action="store_true", help="take VALUE as a string even if it reads as JSON")
    delete = command("delete", "delete an entry on every server")
    delete.add_argument("key")
    keys = command("keys", "the keys of a cache, one a line")
    keys.add_argument("prefix", nargs="?", default="", help="only keys starting with this")
    keys.add_argument("--limit", type=int, default=1000)
    keys.add_argument("--json", action="store_true")
    command("clear", "delete every entry of a cache on every server")


def parse_value(text: str, as_text: bool = False) -> Any:
    """What ``splice cache set`` stores: ``text`` as JSON when it is JSON, else the string itself."""
    if as_text:
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def run(args: argparse.Namespace) -> int | None:
    if args.command != "cache":
        return None
    directory: Path = args.cluster
    if args.action == "list":
        caches = commands.call(directory, "GET", "/splice/admin/caches")["caches"]
        print(json.dumps(caches, indent=2, ensure_ascii=False) if args.json else table(caches))
        return 0
    base = f"/splice/admin/caches/{quote(args.cache_name, safe='')}"
    if args.action == "keys":
        query = urlencode({"prefix": args.prefix, "limit": args.limit})
        answer = commands.call(directory, "GET", f"{base}/keys?{query}")
        if args.json:
            print(json.dumps(answer["keys"], indent=2, ensure_ascii=False))
        elif answer["keys"]:
            print("\n".join(answer["keys"]))
        if answer["truncated"]:
            print(f"splice: more keys than --limit {args.limit}", file=sys.stderr)
        return 0
    if args.action == "clear":
        answer = commands.call(directory, "POST", f"{base}/clear")
        print(f"cleared cache {args.cache_name} on every server ({answer['cleared']} entries on the one that answered)")
        return 0
    entry = f"{base}/entries/{quote(args.key, safe='')}"
    if args.action == "get":
        answer = commands.call(directory, "GET", entry)
        if answer["encoding"] == "base64":
            sys.stdout.buffer.write(base64.b64decode(answer["value"]))
            sys.stdout.flush()
        else:
            print(json.dumps(answer["value"], indent=2, ensure_ascii=False))
        return 0
    if args.action == "set":
        body: dict[str, Any] = {"value": parse_value(args.value, args.text)}
        if args.expiry is not None:
            body["expiry"] = args.expiry
        commands.call(directory, "PUT", entry, body)
        print(f"set {args.key} in cache {args.cache_name}")
        return 0
    answer = commands.call(directory, "DELETE", entry)
    held = "" if answer["existed"] else " (the server that answered did not hold it)"
    print(f"deleted {args.key} from cache {args.cache_name} on every server{held}")
    return 0


def table(caches: list[dict[str, Any]]) -> str:
    """One line per cache: name, backend, entries, bytes, hits, misses, evictions (``-`` where not counted)."""
    lines = [("NAME", "BACKEND", "ENTRIES", "BYTES", "HITS", "MISSES", "EVICTIONS")]
    for cache in caches:
        figures = (cache["entries"], cache["bytes"], cache["hits"], cache["misses"], cache["evictions"])
        lines.append((cache["name"], cache["backend"], *("-" if f is None else str(f) for f in figures)))
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


__all__ = ["parse_value", "register", "run", "table"]
