"""``python -m splice.lsp``: the language server on stdio, or on TCP with ``--tcp HOST:PORT``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="splice lsp", description="Splice's language server (stdio by default).")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP instead of stdio")
    parser.add_argument(
        "--stdio", action="store_true", help="talk over stdin/stdout (the default; language clients pass it)"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level of the server's stderr (default WARNING)")


def run(args: argparse.Namespace) -> int:
    # stdout is the protocol's: logs go to stderr only
    logging.basicConfig(
        stream=sys.stderr, level=str(args.log_level).upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    from .server import server

    if args.tcp:
        host, _, port = str(args.tcp).rpartition(":")
        if not port.isdigit():
            print(f"splice lsp: --tcp wants HOST:PORT, got {args.tcp!r}", file=sys.stderr)
            return 2
        server.start_tcp(host.strip("[]") or "127.0.0.1", int(port))
    else:
        server.start_io()
    return 0


if __name__ == "__main__":
    sys.exit(main())
