"""``python -m splice.dashboard DIR``: run the dashboard of ``DIR/dashboard.toml`` in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from splice.server.core import ConfigError

from .process import run_dashboard


def main() -> int:
    os.umask(0o077)  # its logs, users and sessions are owner-only
    parser = argparse.ArgumentParser(prog="python -m splice.dashboard", description="Run a Splice dashboard.")
    parser.add_argument("directory", type=Path, help="the dashboard directory (holds dashboard.toml)")
    args = parser.parse_args()
    try:
        run_dashboard(args.directory, dict(os.environ))
    except ConfigError as exc:
        print(f"splice dashboard: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
