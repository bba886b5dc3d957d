"""``splice audit`` against a real cluster: a deploy and a refused call made with the CLI are listed, newest first."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import eventually, make_cluster, running, splice

SOURCE = "from splice.server import Service\n\n\nclass Hello(Service):\n    def handle(self):\n        return {}\n"


def test_splice_audit_lists_who_did_what(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello.py").write_text(SOURCE)
    with running(make_cluster(tmp_path / "cluster")) as cluster:
        where = str(cluster.directory)
        splice("deploy", "hello.py", "--cluster", where, cwd=project)
        refused = splice("security", "delete", "nothing-here", "--cluster", where, check=False)
        assert refused.returncode != 0

        def listed() -> list[dict[str, object]]:
            entries: list[dict[str, object]] = json.loads(splice("audit", "--cluster", where, "--json").stdout)[
                "entries"
            ]
            return entries if len(entries) >= 2 else []

        entries = eventually(listed)
        assert isinstance(entries, list)
        assert [(e["method"], e["path"], e["status"]) for e in entries[:2]] == [
            ("DELETE", "/splice/admin/security/nothing-here", 404),
            ("POST", "/splice/admin/deploy", 200),
        ]
        assert all(str(e["actor"]).startswith("cli:") for e in entries[:2])

        text = splice("audit", "--cluster", where, "--limit", "1").stdout.splitlines()
        assert text[0].split() == ["WHEN", "WHO", "WHAT", "STATUS", "SERVER", "CID"]
        assert len(text) == 2
        assert "DELETE /splice/admin/security/nothing-here" in text[1]
        assert " 404 " in text[1]

        actor = str(entries[0]["actor"])
        mine = json.loads(splice("audit", "--cluster", where, "--actor", actor, "--json").stdout)["entries"]
        assert len(mine) == len(entries)
        none = splice("audit", "--cluster", where, "--actor", "nobody")
        assert none.stdout.strip() == "no admin actions recorded that match"
        bad = splice("audit", "--cluster", where, "--limit", "0", check=False)
        assert bad.returncode == 2
        assert "--limit" in bad.stderr
