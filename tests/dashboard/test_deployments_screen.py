"""The Deployments screen, in a real browser against a real two-server cluster: deploy a file, see a refused
one with its file:line, diff two versions, roll back, undeploy; and the upload's size and encoding limits."""

from __future__ import annotations

import uuid
from pathlib import Path

from tests.conftest import eventually
from tests.dashboard.conftest import Dashboard, http, login, shot


def _source(service: str, answer: str) -> str:
    return (
        "from splice.server import Service\n\n\n"
        f"class Answer(Service):\n    name = {service!r}\n\n"
        f"    def handle(self):\n        self.response.payload = {answer!r}\n"
    )


def _invoke(dash: Dashboard, service: str) -> object:
    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/invoke", json={"service": service})
    return answer.json().get("payload") if answer.status_code == 200 else None


def _deploy_in_browser(page: object, tmp_path: Path, module: str, text: str) -> None:
    file = tmp_path / module.rsplit("/", 1)[-1]
    file.write_text(text)
    page.set_input_files("#deploy-file", str(file))  # type: ignore[attr-defined]
    page.fill("#deploy-path", module)  # type: ignore[attr-defined]
    page.click("#deploy-form button[type=submit]")  # type: ignore[attr-defined]


def test_deploy_refuse_diff_roll_back_undeploy(dash: Dashboard, page: object, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    module, service = f"dash{tag}/answer.py", f"dash{tag}.answer"
    login(page, dash, next_path="/deployments")
    page.on("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]

    _deploy_in_browser(page, tmp_path, module, _source(service, "one"))
    result = page.locator("#deploy-result")  # type: ignore[attr-defined]
    for server in ("server1", "server2"):
        result.locator(f"li[data-server={server}]").filter(has_text="deployed").wait_for()
    assert "sequence" in result.inner_text()
    assert eventually(lambda: _invoke(dash, service) == "one")
    page.locator(f"#deployments a:text('{module}')").first.wait_for()  # type: ignore[attr-defined]
    shot(page, "deployments")

    _deploy_in_browser(page, tmp_path, module, _source(service, "two"))
    result.locator("li[data-server=server2]").filter(has_text="deployed").wait_for()
    assert eventually(lambda: _invoke(dash, service) == "two")

    broken = _source(service, "three").replace("def handle(self):", "def handle(self:")
    _deploy_in_browser(page, tmp_path, module, broken)
    alert = result.locator(".alert")
    alert.wait_for()
    assert f"{module}:7:" in alert.inner_text()  # file:line:col of the syntax error
    assert _invoke(dash, service) == "two"  # the old version still answers

    page.goto(f"{dash.url}/deployments/module?path={module}")  # type: ignore[attr-defined]
    page.locator("#versions tr[data-version='2']").wait_for()  # type: ignore[attr-defined]
    page.select_option("#diff-from", "1")  # type: ignore[attr-defined]
    page.select_option("#diff-to", "2")  # type: ignore[attr-defined]
    page.click("#diff-form button[type=submit]")  # type: ignore[attr-defined]
    diff = page.locator("#diff")  # type: ignore[attr-defined]
    diff.locator(".diff-add").filter(has_text="'two'").wait_for()
    assert "-        self.response.payload = 'one'" in diff.inner_text()
    assert diff.locator(".diff-del").filter(has_text="'one'").count() == 1
    shot(page, "module")

    page.click("#versions tr[data-version='1'] button:text('Roll back to v1')")  # type: ignore[attr-defined]
    outcome = page.locator("#module-result")  # type: ignore[attr-defined]
    outcome.locator("li[data-server=server2]").filter(has_text="deployed").wait_for()
    assert "back to v1" in outcome.inner_text()
    assert eventually(lambda: _invoke(dash, service) == "one")
    page.locator("#versions tr[data-version='3']").wait_for()  # type: ignore[attr-defined]  # live on sse:changed

    page.click("button:text('Undeploy')")  # type: ignore[attr-defined]
    outcome.filter(has_text="Undeployed").wait_for()
    assert eventually(lambda: _invoke(dash, service) is None)


def test_upload_limits(dash: Dashboard) -> None:
    with http(dash) as client:
        big = client.post("/deployments/deploy", files={"file": ("big.py", b"#" * (1024 * 1024 + 1))})
        assert big.status_code == 413, big.text
        assert "1 MiB" in big.text
        latin = client.post("/deployments/deploy", files={"file": ("latin.py", "x = 'é'\n".encode("latin-1"))})
        assert latin.status_code == 400
        assert "latin.py: not UTF-8" in latin.text


def test_a_viewer_cannot_deploy(dash: Dashboard) -> None:
    with http(dash, "viewer") as client:
        form = client.get("/deployments").text
        assert "viewers cannot change anything" in form
        refused = client.post("/deployments/deploy", files={"file": ("x.py", b"x = 1\n")})
        assert refused.status_code == 403
