"""What a server on SQLite imports of the ODB's dependencies: no other dialect's code at start."""

from __future__ import annotations

import subprocess
import sys


def test_a_server_imports_no_postgresql_dialect() -> None:
    code = (
        "import sys\n"
        "import splice.server.bootstrap, splice.server.odb, splice.server.http.app, splice.scheduler\n"
        "print([m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgresql')])"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout == "[]\n"
