"""``python -m splice.scheduler DIR --name NAME``: one scheduler process of the cluster in ``DIR``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from splice.server import SpliceError

from .process import run_scheduler


def main() -> int:
    os.umask(0o077)  # its logs and state files, and an ODB or -wal it creates, are owner-only
    parser = argparse.ArgumentParser(prog="python -m splice.scheduler", description="run one scheduler")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", default="scheduler1")
    args = parser.parse_args()
    try:
        run_scheduler(args.directory, args.name)
    except SpliceError as exc:
        print(f"splice scheduler: {exc}", file=sys.stderr)
        return 1
    return 0


sys.exit(main())
