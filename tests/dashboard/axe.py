"""axe-core in a Playwright page: ``violations(page)`` lists the serious and critical accessibility violations.

axe-core comes from npm at the version pinned in ``tests/dashboard/package.json`` (``package-lock.json``), installed
into ``tests/dashboard/node_modules`` by ``npm ci`` the first time it is missing (CI starts from a clean checkout).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")
_installing = threading.Lock()


def ensure_axe() -> Path:
    """The path of ``axe.min.js``, after ``npm ci`` in ``tests/dashboard`` when it is not there yet."""
    with _installing:
        if not AXE.is_file():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError("npm is not installed: the accessibility checks need it to install axe-core")
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=300
            )
            if done.returncode != 0 or not AXE.is_file():
                raise RuntimeError(f"npm ci in {HERE} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return AXE


def settle(page: Any) -> None:
    """Wait until ``page`` has loaded and no htmx request is under way (what a page fetches on load is in)."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => !document.querySelector('.htmx-request')")


def violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on ``page`` once settled (``axe.run()`` on the document)."""
    path = ensure_axe()
    settle(page)
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # A Content-Security-Policy without 'unsafe-inline' refuses the injected tag (Playwright raises).
        with contextlib.suppress(PlaywrightError):
            page.add_script_tag(path=str(path))
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            # The page's CSP refused the injected tag; an evaluation from the driver is not subject to it.
            page.evaluate(path.read_text(encoding="utf-8") + "\n;0")
    results = page.evaluate(
        "async () => { const r = await window.axe.run(document);"
        " return {violations: r.violations, passes: r.passes.length}; }"
    )
    if not results["passes"]:  # axe checked nothing: a page that did not load, not an accessible one
        raise AssertionError(f"axe-core checked no rule on {page.url}")
    return [v for v in results["violations"] if v.get("impact") in SERIOUS]


def describe(found: list[dict[str, Any]]) -> str:
    """One line per violation: its id, its help and the first offending node's target (for assertion messages)."""
    lines = []
    for v in found:
        nodes = v.get("nodes") or [{}]
        target = nodes[0].get("target")
        lines.append(f"{v['id']} ({v.get('impact')}): {v.get('help')} at {target} ({len(nodes)} nodes)")
    return "\n".join(lines)
