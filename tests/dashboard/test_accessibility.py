"""Accessibility of every main screen: axe-core finds no serious or critical violation, the conventions hold (one
<h1>, tables named, column headers scoped), and the login page works with the keyboard alone."""

from __future__ import annotations

import secrets
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import eventually
from tests.dashboard.axe import describe, settle, violations
from tests.dashboard.conftest import PASSWORD, Dashboard, login

UID = secrets.token_hex(3)
SERVICE = f"a11y{UID}.checked"
MODULE = f"a11y{UID}/checked.py"
SOURCE = textwrap.dedent(
    f"""
    from splice.server import Service


    class Checked(Service):
        name = "{SERVICE}"

        def handle(self):
            self.logger.info("checked %s", self.request.payload)
            self.response.payload = {{"checked": True}}
    """
).lstrip()

SCREENS = [
    "/",
    "/services",
    f"/services/{SERVICE}",
    "/deployments",
    f"/deployments/module?path={MODULE}",
    "/channels",
    "/security",
    "/outgoing",
    "/jobs",
    "/topics",
    "/caches",
    "/logs",
    "/metrics",
]

# What the page's own conventions ask beyond axe: one <h1>; every table named by a caption or aria-label; every
# column header of a table's head scoped.
CONVENTIONS = """() => {
  const problems = [];
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} <h1> elements (one expected)`);
  document.querySelectorAll("table").forEach((t, i) => {
    const named = t.querySelector("caption") || t.getAttribute("aria-label") || t.getAttribute("aria-labelledby");
    if (!named) problems.push(`table ${t.id ? "#" + t.id : i} has no caption and no aria-label`);
    t.querySelectorAll("thead th").forEach((th) => {
      if (th.getAttribute("scope") !== "col")
        problems.push(`table ${t.id || i}: <th>${th.textContent.trim()}</th> lacks scope="col"`);
    });
  });
  document.querySelectorAll("button").forEach((b) => {
    if (!b.textContent.trim() && !b.getAttribute("aria-label"))
      problems.push(`a button without text: ${b.outerHTML.slice(0, 120)}`);
  });
  return problems;
}"""


@pytest.fixture(scope="module")
def objects(dash: Dashboard) -> None:
    """A module with a service, a REST channel, a job and a topic, so that the screens have rows to show."""
    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": MODULE, "source": SOURCE}]})
        assert answer.status_code == 200, answer.text
        admin.post("/splice/admin/invoke", json={"service": SERVICE, "payload": {"n": 1}}).raise_for_status()
        channel = {"name": f"a11y-{UID}", "path": f"/a11y-{UID}", "service": SERVICE, "methods": ["POST"]}
        assert admin.post("/splice/admin/channels", json=channel).status_code == 201
        job = {"name": f"a11y-{UID}", "service": SERVICE, "interval": 3600}
        assert admin.post("/splice/admin/jobs", json=job).status_code == 201
        assert admin.post("/splice/admin/topics", json={"name": f"a11y-{UID}"}).status_code == 201
        for url in dash.cluster.urls:
            eventually(lambda url=url: admin.get(f"{url}/splice/admin/services/{SERVICE}").status_code == 200)


@pytest.fixture(scope="module")
def admin_page(browser: Any, dash: Dashboard, objects: None) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    tab = context.new_page()
    login(tab, dash)
    yield tab
    context.close()


@pytest.mark.parametrize("path", SCREENS)
def test_no_serious_violations(admin_page: Any, dash: Dashboard, path: str) -> None:
    answer = admin_page.goto(dash.url + path)
    assert answer is not None, path
    assert answer.status == 200, f"{path} answered {answer.status}"
    found = violations(admin_page)
    assert not found, f"{path}: axe-core found {len(found)} serious or critical violations:\n{describe(found)}"
    problems = admin_page.evaluate(CONVENTIONS)
    assert not problems, f"{path} breaks the dashboard's conventions:\n" + "\n".join(problems)


def test_login_page_has_no_serious_violations(browser: Any, dash: Dashboard) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(dash.url + "/login")
        found = violations(tab)
        assert not found, f"/login: axe-core found serious or critical violations:\n{describe(found)}"
        problems = tab.evaluate(CONVENTIONS)
        assert not problems, "/login breaks the dashboard's conventions:\n" + "\n".join(problems)
    finally:
        context.close()


def _focused(tab: Any) -> str:
    """What has the focus: its id, or its tag and text (a button)."""
    return str(
        tab.evaluate(
            "() => { const e = document.activeElement;"
            " return e.id ? '#' + e.id : e.tagName.toLowerCase() + ':' + e.textContent.trim(); }"
        )
    )


def test_login_with_the_keyboard_alone(browser: Any, dash: Dashboard) -> None:
    context = browser.new_context()
    try:
        tab = context.new_page()
        tab.goto(dash.url + "/login?next=/services")
        settle(tab)
        tab.click("h1")  # focus navigation starts from the top of the form, not from the autofocused field
        seen: list[str] = []
        for _ in range(10):  # Tab from the top of the page until the button, noting where the focus goes
            tab.keyboard.press("Tab")
            seen.append(_focused(tab))
            if seen[-1] == "button:Log in":
                break
        for wanted in ("#username", "#password", "button:Log in"):
            assert wanted in seen, seen
        assert seen.index("#username") < seen.index("#password") < seen.index("button:Log in"), seen
        tab.focus("#username")
        tab.keyboard.type("admin")
        tab.keyboard.press("Tab")
        assert _focused(tab) == "#password"
        tab.keyboard.type(PASSWORD)
        with tab.expect_navigation():
            tab.keyboard.press("Enter")
        assert tab.url == dash.url + "/services", tab.url
    finally:
        context.close()
