"""One distribution, ``splice``, whose wheel maps each Python folder onto ``splice.<folder>``."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_maps_folders_onto_splice_packages(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("splice-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "splice/server/__init__.py",
        "splice/server/py.typed",
        "splice/server/odb/migrations/env.py",
        "splice/server/odb/migrations/versions/0001_initial_schema.py",
        "splice/testing/plugin.py",
        # The dashboard's package data: its pages and the vendored htmx (no CDN, no build step).
        "splice/dashboard/templates/base.html",
        "splice/dashboard/templates/screens/cluster.html",
        "splice/dashboard/static/htmx-2.0.11.min.js",
        "splice/dashboard/static/htmx-ext-sse-2.2.4.min.js",
        "splice/dashboard/static/splice.css",
    ):
        assert expected in names
    assert not any(name.startswith(("server/", "testing/", "tests/", "bench/")) for name in names)
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    # -S: no site-packages, so only the unpacked wheel can provide splice.server (which needs nothing else).
    probe = "import splice.server, splice.server.core.naming as n; print(splice.server.__file__, n.kebab('GetOrder'))"
    result = subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        check=True,
        capture_output=True,
        text=True,
    )
    location, name = result.stdout.split()
    assert location == str(target / "splice" / "server" / "__init__.py")
    assert name == "get-order"
