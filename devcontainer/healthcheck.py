"""Health checks of the compose services that have no tool of their own (standard library only).

    python healthcheck.py http://server1:17011/splice/ping      # 200 from a URL
    python healthcheck.py --scheduler /cluster scheduler1       # that scheduler runs here, active or standing by

Exit 0 when healthy, 1 with a line on stderr otherwise.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path


def url_ok(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def scheduler_ok(directory: str, name: str) -> str | None:
    state_file = Path(directory) / name / "scheduler.state"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        argv = Path(f"/proc/{state['pid']}/cmdline").read_bytes()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{state_file}: {exc}"
    if b"scheduler" not in argv:  # a state file left by an earlier container, naming a pid reused since
        return f"{state_file}: pid {state['pid']} is not a scheduler"
    if state.get("state") not in ("active", "standby"):
        return f"{state_file}: {state.get('state')}"
    return None


def main(argv: list[str]) -> int:
    problem = scheduler_ok(argv[2], argv[3]) if argv[1:2] == ["--scheduler"] else url_ok(argv[1])
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
