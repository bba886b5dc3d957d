"""Ctrl+S in a real VS Code until every server answers the new code, beside ``uvicorn --reload`` in the same run.

Runs the code-server end-to-end test (``vscode-extension/e2e/codeServer.test.mjs``) with ``SPLICE_E2E_SAVES``
saves: the packaged extension in code-server (VS Code 1.139, offline) driven by Debian's chromium, a two-server
quickstart cluster, and a Starlette app under ``uvicorn --reload`` in the same workspace. Each round edits the
number a file serves and presses Ctrl+S, once in ``shop/hello.py`` (deployed on save by the extension) and once in
``uvicorn_app/app.py`` (alternating which goes first), and takes the time from the key press reaching the page
until every server (or uvicorn) answers the new number. uvicorn is polled every 2 ms; a Splice save (``--measure
status``, the default) is done once the editor's status bar shows every server deployed and each server then answers
the new number (polled every 2 ms only if one does not yet), so no request reaches a server while it deploys;
``--measure poll`` polls every server every 2 ms from the key press on, ``both`` alternates the two (same run). The
test prints each figure and a breakdown of each Splice save from the extension's log; this script collects them into
a table with the ratio.

Without code-server, chromium or the extension's node_modules it says what is missing and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, Processes, cmdline, machine, median, percentile, ratio, run, table, workdir

EXT = REPO / "vscode-extension"
SPLICE_LINE = re.compile(r"save -> every server answers: (\d+) ms")
POLLED_LINE = re.compile(r"save -> every server answers \(polled from Ctrl\+S on\): (\d+) ms")
UVICORN_LINE = re.compile(r"uvicorn --reload: save -> new code answers: (\d+) ms")
BREAKDOWN_LINE = re.compile(r"^\W*(save \d+ \(\d+ ms\): .*)$")


def _summary(name: str, value: float, unit: str, baseline: tuple[str, float] | None, target: str) -> None:
    """``bench/run``'s closing-table line (``_common.summary`` where it exists; the same format otherwise)."""
    try:
        from _common import summary  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        base = "no baseline"
        if baseline:
            base = f"baseline {baseline[0]}: {baseline[1]:.1f} {unit}, ratio {ratio(value, baseline[1]):.2f}"
        print(f"SUMMARY {name}: {value:.1f} {unit} ({base}); target {target}", flush=True)
    else:
        summary(name, value, unit, baseline, target)


def _missing() -> list[str]:
    cache = Path(os.environ.get("SPLICE_E2E_CACHE", Path.home() / ".cache" / "splice-e2e"))
    needs = {
        "Node 24": Path(os.environ.get("SPLICE_E2E_NODE24", cache / "node24/node_modules/node/bin/node")),
        "code-server": cache / "code-server/node_modules/code-server/out/node/entry.js",
        "playwright-core": Path(
            os.environ.get("SPLICE_E2E_PLAYWRIGHT", cache / "playwright/node_modules/playwright-core")
        ),
        "chromium": Path(os.environ.get("SPLICE_E2E_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")),
        "the extension's node_modules (npm ci in vscode-extension)": EXT / "node_modules/.bin/vsce",
    }
    missing = [f"{what} ({path})" for what, path in needs.items() if not path.exists()]
    if not shutil.which("node") or not shutil.which("npm"):
        missing.append("node and npm on PATH")
    return missing


def _stop_leftovers(tmp: Path) -> None:
    """Stop what the test started under ``tmp`` (its TMPDIR) if it could not: code-server, chromium, uvicorn..."""
    for attempt in range(2):
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            cwd = ""
            with contextlib.suppress(OSError):
                cwd = os.readlink(f"/proc/{entry}/cwd")
            if str(tmp) in cmdline(int(entry)) or cwd.startswith(str(tmp)):
                pids.append(int(entry))
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
        time.sleep(1.0)


def _row(name: str, values: list[int]) -> list[object]:
    """A table row: how many, p50, p99, min and max."""
    figures = [median(values), percentile(values, 99), min(values), max(values)]
    return [name, len(values), *(float(x) for x in figures)]


def _report(text: str, splice: list[int], polled: list[int], uvicorn: list[int]) -> None:
    """Each save's breakdown and figure, the table, the ratio and the SUMMARY line."""
    print("\nwhere each Splice save went (from the extension's log and the test's clock):")
    for line in text.splitlines():
        hit = BREAKDOWN_LINE.match(line)
        if hit:
            print(f"  {hit.group(1)}")
    print()
    for ms in splice:
        print(f"save -> every server answers: {ms} ms")
    for ms in polled:
        print(f"save -> every server answers (polled from Ctrl+S on): {ms} ms")
    for ms in uvicorn:
        print(f"uvicorn --reload: save -> new code answers: {ms} ms")
    rows = [_row("Splice: Ctrl+S -> every server answers", splice)]
    if polled:
        rows.append(_row("Splice, polled from Ctrl+S on", polled))
    if uvicorn:
        rows.append(_row("uvicorn --reload: Ctrl+S -> new code answers", uvicorn))
    print()
    print(table(["ms", "n", "p50", "p99", "min", "max"], rows))
    if uvicorn:
        r = ratio(median(uvicorn), median(splice))
        print(f"\nratio uvicorn --reload / Splice (p50): {r:.1f}x (Splice {r:.1f} times faster)")
    baseline = ("uvicorn --reload, Ctrl+S to new code answering p50", float(median(uvicorn))) if uvicorn else None
    _summary("editor, Ctrl+S to every server answering p50", float(median(splice)), "ms", baseline, "<= 150 ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saves", type=int, default=7, help="saves of each kind (default 7)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (code-server's logs)")
    parser.add_argument("--no-build", action="store_true", help="use the .vsix already packaged")
    parser.add_argument(
        "--measure",
        choices=["status", "poll", "both"],
        default="status",
        help="a Splice save is done: status bar then one request per server (default), polled from the key press, both",
    )
    args = parser.parse_args()

    missing = _missing()
    if missing:
        print(f"editor: skipped, missing: {'; '.join(missing)}. Run 'bash vscode-extension/e2e/setup.sh'.")
        return 0
    print(f"editor: Ctrl+S -> every server answers, {args.saves} saves, beside uvicorn --reload ({machine()})")
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    if not args.no_build:
        for step in (["npm", "run", "build"], ["npm", "run", "package"]):
            done = subprocess.run(step, cwd=EXT, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                print(f"editor: '{' '.join(step)}' in {EXT} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
                return 1

    with workdir(args.keep, "splice-bench-editor-") as tmp, Processes() as procs:
        env = {
            **os.environ,
            "SPLICE_E2E_SAVES": str(args.saves),
            "SPLICE_E2E_MEASURE": args.measure,
            "TMPDIR": str(tmp),
        }
        if args.keep:
            env["SPLICE_E2E_KEEP"] = "1"
        proc = procs.start(
            ["node", "--test", "--test-reporter=tap", "e2e/"],
            cwd=EXT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            out, _ = proc.communicate(timeout=600)
        finally:
            procs.stop(proc)
            _stop_leftovers(tmp)
    text = out.decode(errors="replace")
    splice = [int(m.group(1)) for m in SPLICE_LINE.finditer(text)]
    uvicorn = [int(m.group(1)) for m in UVICORN_LINE.finditer(text)]
    polled = [int(m.group(1)) for m in POLLED_LINE.finditer(text)]
    if proc.returncode != 0 or not splice:
        print(f"editor: the end-to-end test failed (exit {proc.returncode}); its output ends with:\n{text[-4000:]}")
        return 1

    _report(text, splice, polled, uvicorn)
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
    return 0


if __name__ == "__main__":
    run(main)
