"""Module paths too long for the file system, and refused deploys, through the real admin API: a 422 naming the
limit, and nothing left behind in the deployed directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import InProcess

pytestmark = pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
SERVICE = "from splice.server import Service\n\n\nclass S(Service):\n    def handle(self):\n        pass\n"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("path", "source", "fragment"),
    [
        ("a" * 300 + ".py", SERVICE, "at most 255"),
        ("d" * 300 + "/m.py", SERVICE, "at most 255"),
        ("ok/" + "é" * 130 + ".py", SERVICE, "at most 255"),  # 130 characters, 263 bytes
        ("fresh/deep/bad.py", "x = (\n", "SyntaxError"),
        ("fresh/deep/bad.py", "import no_such_module_here\n", "No module named"),
    ],
)
async def test_refused_deploy_answers_422_and_leaves_nothing(
    server: InProcess, path: str, source: str, fragment: str
) -> None:
    root = server.runtime.engine.deployed_dir  # type: ignore[attr-defined]
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": "kept.py", "source": SERVICE}]})
    assert answer.status_code == 200, answer.text
    before = _tree(root)
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": path, "source": source}]})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert fragment in error["message"], error
    assert error["problems"][0]["path"] == path
    assert _tree(root) == before


async def test_longest_name_deploys_and_undeploy_prunes_its_directories(server: InProcess) -> None:
    root = server.runtime.engine.deployed_dir  # type: ignore[attr-defined]
    before = _tree(root)
    path = "p" * 200 + "/" + "m" * 252 + ".py"  # a 255-byte file name: the file system's limit, no more
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": path, "source": SERVICE}]})
    assert answer.status_code == 200, answer.text
    assert (root / path).read_text() == SERVICE
    answer = await server.admin.post("/splice/admin/undeploy", json={"paths": [path]})
    assert answer.status_code == 200, answer.text
    assert _tree(root) == before
