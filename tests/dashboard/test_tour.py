"""The dashboard's tour, as one user does it in one browser session: log in, see the servers, deploy a file, invoke
its service, roll back, create a REST channel and call it, create a job and run it now, watch a log line arrive;
then a viewer, who may look but not change anything, and an action without the CSRF token.

The steps run in file order on one page (module-scoped) and build on each other. Each main screen is saved as
``artifacts/tour-<screen>.png``.
"""

from __future__ import annotations

import json
import re
import secrets
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import eventually
from tests.dashboard.axe import settle
from tests.dashboard.conftest import Dashboard, http, login, shot

UID = secrets.token_hex(3)
PACKAGE = f"tour{UID}"
MODULE = f"{PACKAGE}/answer.py"
SERVICE = f"{PACKAGE}.answer"
TICK = f"{PACKAGE}.tick"
CHANNEL = f"tour-{UID}"
JOB = f"tour-{UID}"
WAIT = 15_000  # ms Playwright polls for a condition (not a measured time)


def source(version: int) -> str:
    return textwrap.dedent(
        f"""
        from splice.server import Service


        class Answer(Service):
            name = "{SERVICE}"

            def handle(self):
                self.logger.info("tour answer v{version} for %s", self.request.payload)
                self.response.payload = {{"version": {version}, "got": self.request.payload}}


        class Tick(Service):
            name = "{TICK}"

            def handle(self):
                key = self.request.payload["key"]
                self.cache["default"].set(key, (self.cache["default"].get(key) or 0) + 1)
                self.response.payload = {{"ticked": key}}
        """
    ).lstrip()


@pytest.fixture(scope="module")
def tour(browser: Any, dash: Dashboard) -> Iterator[Any]:
    """The one page the tour happens on (admin, logged in by the first step)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    tab = context.new_page()
    tab.set_default_timeout(WAIT)
    expect.set_options(timeout=WAIT)
    yield tab
    expect.set_options(timeout=5_000)  # Playwright's default again
    context.close()


def visit(tab: Any, dash: Dashboard, path: str) -> None:
    answer = tab.goto(dash.url + path)
    assert answer is not None, path
    assert answer.status == 200, f"{path} answered {answer.status}"
    settle(tab)


def invoke_on(url: str, dash: Dashboard, service: str, payload: object) -> Any:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {dash.cluster.token}"}, timeout=30) as c:
        answer = c.post("/splice/admin/invoke", json={"service": service, "payload": payload})
        assert answer.status_code == 200, answer.text
        return answer.json()["payload"]


def test_log_in(tour: Any, dash: Dashboard) -> None:
    login(tour, dash)
    assert tour.url == dash.url + "/"


def test_both_servers_live(tour: Any, dash: Dashboard) -> None:
    visit(tour, dash, "/")
    for server in ("server1", "server2"):
        expect(tour.locator(f"#servers tr[data-server={server}]")).to_contain_text("live")
    shot(tour, "tour-cluster")


def deploy_from_browser(tour: Any, dash: Dashboard, tmp: Path, version: int) -> None:
    file = tmp / "answer.py"
    file.write_text(source(version))
    visit(tour, dash, "/deployments")
    tour.set_input_files("#deploy-file", str(file))
    tour.fill("#deploy-path", MODULE)
    tour.get_by_role("button", name="Deploy", exact=True).click()
    for server in ("server1", "server2"):
        expect(tour.locator(f"#deploy-result li[data-server={server}]")).to_contain_text("deployed")


def test_deploy_a_file_from_the_browser(tour: Any, dash: Dashboard, tmp_path: Path) -> None:
    deploy_from_browser(tour, dash, tmp_path, 1)
    shot(tour, "tour-deployments")
    deploy_from_browser(tour, dash, tmp_path, 2)
    for url in dash.cluster.urls:
        assert invoke_on(url, dash, SERVICE, {})["version"] == 2
    expect(tour.locator("#deployments")).to_contain_text(MODULE)


def test_invoke_from_the_service_page(tour: Any, dash: Dashboard) -> None:
    visit(tour, dash, f"/services?q={PACKAGE}")
    expect(tour.locator(f"#services tr[data-service='{SERVICE}']")).to_be_visible()
    shot(tour, "tour-services")
    visit(tour, dash, f"/services/{SERVICE}")
    expect(tour.locator("#source")).to_contain_text("tour answer v2")
    tour.fill("#payload", json.dumps({"from": "the tour"}))
    tour.select_option("#invoke-server", "")
    tour.get_by_role("button", name="Invoke", exact=True).click()
    result = tour.locator("#invoke-result")
    expect(result).to_contain_text("status 200")
    expect(result.locator("pre")).to_contain_text('"version": 2')
    link = result.locator("a[href*='/logs?cid=']").first
    cid = re.search(r"cid=([^&]+)", link.get_attribute("href") or "")
    assert cid, link.get_attribute("href")
    assert cid.group(1) in result.inner_text(), result.inner_text()
    assert re.search(r"\d+(\.\d+)? ?ms", result.inner_text()), result.inner_text()
    shot(tour, "tour-service")


def test_roll_back_to_the_first_version(tour: Any, dash: Dashboard) -> None:
    visit(tour, dash, f"/deployments/module?path={MODULE}")
    expect(tour.locator("#versions tr[data-version='1']")).to_be_visible()
    expect(tour.locator("#versions tr[data-version='2']")).to_be_visible()
    shot(tour, "tour-module")
    dialogs: list[str] = []

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    tour.once("dialog", accept)
    tour.get_by_role("button", name="Roll back to v1").click()
    expect(tour.locator("#module-result")).to_contain_text("deployed")
    assert dialogs, "Roll back asked no confirmation (hx-confirm)"
    for url in dash.cluster.urls:
        eventually(lambda url=url: invoke_on(url, dash, SERVICE, {})["version"] == 1)
    shot(tour, "tour-module-rolled-back")


def test_create_a_rest_channel_and_call_it(tour: Any, dash: Dashboard) -> None:
    visit(tour, dash, "/channels")
    form = tour.locator("#channel-form")
    form.locator("[name=name]").fill(CHANNEL)
    form.locator("[name=kind]").select_option("rest")
    settle(tour)  # the kind's fields are fetched when it changes
    form.locator("[name=path]").fill(f"/{CHANNEL}")
    form.locator("[name=service]").fill(SERVICE)
    form.locator("[name=methods]").fill("POST")
    tour.get_by_role("button", name="Create channel").click()
    expect(tour.locator("#channel-result")).to_contain_text("created")
    expect(tour.locator(f"#channels tr[data-channel='{CHANNEL}']")).to_be_visible()
    shot(tour, "tour-channels")
    front = dash.cluster.load_balancer or dash.cluster.url

    def called() -> bool:
        answer = httpx.post(f"{front}/{CHANNEL}", json={"via": "curl"}, timeout=10)
        return answer.status_code == 200 and answer.json() == {"version": 1, "got": {"via": "curl"}}

    eventually(called)


def test_interval_job_run_now(tour: Any, dash: Dashboard) -> None:
    key = f"tour-{UID}-ticks"
    visit(tour, dash, "/jobs")
    form = tour.locator("#job-form")
    form.locator("[name=name]").fill(JOB)
    form.locator("[name=service]").fill(TICK)
    form.locator("[name=kind]").select_option("interval")
    settle(tour)
    form.locator("[name=every]").fill("3600")  # the unit's default: seconds
    form.locator("[name=payload]").fill(json.dumps({"key": key}))
    tour.get_by_role("button", name="Create job").click()
    # The convention says #job-result; the Jobs screen puts the create form's outcome in #job-create-result (and
    # keeps #job-result for the rows' actions).
    created = "#job-create-result" if tour.locator("#job-create-result").count() else "#job-result"
    expect(tour.locator(created)).to_contain_text(JOB)
    row = tour.locator(f"#jobs tr[data-job='{JOB}']")
    expect(row).to_be_visible()
    shot(tour, "tour-jobs")
    row.get_by_role("button", name="Run now").click()
    with dash.cluster.admin() as admin:
        eventually(lambda: admin.get(f"/splice/admin/caches/default/entries/{key}").status_code == 200, 30)
    visit(tour, dash, f"/jobs/{JOB}")
    expect(tour.locator("#runs tbody tr").first).to_contain_text("ok", timeout=30_000)
    shot(tour, "tour-job")


def test_a_log_line_appears_live(tour: Any, dash: Dashboard) -> None:
    visit(tour, dash, f"/logs?service={SERVICE}")
    marker = f"live-{secrets.token_hex(4)}"
    line = tour.locator("#log-lines .log-line", has_text=marker)

    def arrived() -> bool:
        # A call after the page opened; called again while the page's stream may still be connecting.
        invoke_on(dash.cluster.url, dash, SERVICE, {"marker": marker})
        expect(line.first).to_be_visible(timeout=2000)
        return True

    eventually(arrived, 30)
    assert line.first.get_attribute("data-cid"), "a log line without data-cid"
    shot(tour, "tour-logs")


@pytest.mark.parametrize("path", ["/security", "/outgoing", "/topics", "/caches", "/metrics"])
def test_other_screens(tour: Any, dash: Dashboard, path: str) -> None:
    visit(tour, dash, path)
    expect(tour.locator("h1")).to_have_count(1)
    shot(tour, "tour-" + path.strip("/"))


def _action_path(tour: Any, dash: Dashboard) -> str:
    """Where the job's "Run now" button posts (read from the admin's page)."""
    visit(tour, dash, "/jobs")
    button = tour.locator(f"#jobs tr[data-job='{JOB}']").get_by_role("button", name="Run now")
    target = button.evaluate("b => (b.closest('[hx-post]') || b.form || {}).getAttribute?.('hx-post') || ''")
    return str(target or f"/jobs/{JOB}/run-now")


def test_a_viewer_sees_disabled_actions_and_is_refused(browser: Any, tour: Any, dash: Dashboard) -> None:
    action = _action_path(tour, dash)
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        viewer = context.new_page()
        viewer.set_default_timeout(WAIT)
        login(viewer, dash, "viewer")
        checks = [
            ("/deployments", "Deploy"),
            (f"/services/{SERVICE}", "Invoke"),
            (f"/deployments/module?path={MODULE}", "Roll back to v2"),
            ("/channels", "Create channel"),
            ("/jobs", "Create job"),
            ("/jobs", "Run now"),
        ]
        for path, name in checks:
            visit(viewer, dash, path)
            expect(viewer.get_by_role("button", name=name).first).to_be_disabled()
            expect(viewer.get_by_text("viewers cannot change anything").first).to_be_visible()
        shot(viewer, "tour-viewer-jobs")
    finally:
        context.close()
    with http(dash, "viewer") as client:
        answer = client.post(action)
        assert answer.status_code == 403, (action, answer.status_code, answer.text)


def test_an_action_without_the_csrf_token_is_refused(tour: Any, dash: Dashboard) -> None:
    action = _action_path(tour, dash)
    with http(dash, "admin") as client:
        del client.headers["X-CSRF-Token"]
        answer = client.post(action)
        assert answer.status_code == 403, (action, answer.status_code, answer.text)
