"""``splice lsp``: start the language server (``splice.lsp``) on stdio, or on TCP with ``--tcp HOST:PORT``.

A command module of the ``splice`` command (see ``EXTENSIONS``). ``splice.lsp`` is imported only when
the command runs: ``splice.server`` never depends on it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def register(sub: Any, cluster_arg: Callable[[argparse.ArgumentParser], None]) -> None:
    command = sub.add_parser("lsp", help="run the language server (stdio; --tcp HOST:PORT)")
    command.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    command.add_argument(
        "--stdio", action="store_true", help="talk over stdin/stdout (the default; language clients pass it)"
    )
    command.add_argument("--log-level", default="WARNING", help="logging level on stderr (default WARNING)")


def run(args: argparse.Namespace) -> int | None:
    if args.command != "lsp":
        return None
    from splice.lsp.__main__ import run as run_lsp

    return run_lsp(args)
