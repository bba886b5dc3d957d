"""Fixtures for the dashboard's tests: a real cluster, a real dashboard process, a real browser.

- ``dash``: one two-server quickstart cluster (HAProxy in front when installed) for the dashboard's tests, and a
  dashboard process (``python -m splice.dashboard DIR``) administering it through the admin API, with two
  users: ``admin`` (role admin) and ``viewer`` (role viewer), both with the password ``PASSWORD``. Package scope,
  as ``browser``: both stop once the dashboard's tests are done, not left running under the rest of the suite.
- ``browser``: Debian's chromium driven by Playwright (never ``playwright install``: it downloads).
- ``page``: a new browser page per test; ``login(page, "admin")`` logs it in.
- ``http(dash, "admin")``: an httpx client with a session, and the CSRF token in its headers.
- ``SHOTS``: where screenshots go (``tests/dashboard/artifacts``, kept out of git), to look at.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from splice.dashboard import Users, render_dashboard_config
from tests.conftest import Cluster, eventually, free_port, make_cluster, running

PASSWORD = "dashboard-test-password"
SHOTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Dashboard:
    cluster: Cluster
    directory: Path
    url: str
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.directory / "logs" / "dashboard.log").read_text(errors="replace")


def start_dashboard(cluster: Cluster, directory: Path) -> Dashboard:
    """A dashboard for ``cluster`` in ``directory`` (made here, as ``splice create dashboard`` would), running."""
    directory.mkdir(parents=True)
    port = free_port()
    admin = [cluster.load_balancer] if cluster.load_balancer else cluster.urls
    text = render_dashboard_config(
        cluster.directory.name, "127.0.0.1", port, admin, str(cluster.directory / "admin-token")
    )
    (directory / "dashboard.toml").write_text(text)
    users = Users(directory / "users.json")
    users.create("admin", PASSWORD, "admin")
    users.create("viewer", PASSWORD, "viewer")
    (directory / "logs").mkdir()
    with open(directory / "logs" / "console.log", "ab") as console:
        process = subprocess.Popen(
            [sys.executable, "-m", "splice.dashboard", str(directory)], stdout=console, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    eventually(lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200)
    return Dashboard(cluster, directory, url, process)


@pytest.fixture(scope="package")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    base = tmp_path_factory.mktemp("dashboard")
    made = make_cluster(base / "cluster", servers=2, load_balancer=shutil.which("haproxy") is not None)
    with running(made) as cluster:
        dashboard = start_dashboard(cluster, base / "dashboard")
        try:
            yield dashboard
        finally:
            dashboard.process.terminate()
            dashboard.process.wait(10)


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})  # type: ignore[attr-defined]
    tab = context.new_page()
    yield tab
    context.close()


def login(page: object, dash: Dashboard, user: str = "admin", password: str = PASSWORD, next_path: str = "/") -> None:
    page.goto(f"{dash.url}/login?next={next_path}")  # type: ignore[attr-defined]
    page.fill("#username", user)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_url(re.compile(r"^(?!.*/login).*$"))  # type: ignore[attr-defined]


@contextlib.contextmanager
def http(dash: Dashboard, user: str = "admin") -> Iterator[httpx.Client]:
    """``with http(dash, "viewer") as client``: logged in as ``user``, sending the session's CSRF token."""
    with httpx.Client(base_url=dash.url, timeout=30, headers={"Accept": "text/html"}) as client:
        _log_in(client, user)
        yield client


def _log_in(client: httpx.Client, user: str) -> None:
    form = client.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token, form
    answer = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": token.group(1), "next": "/"})
    assert answer.status_code == 303, answer.text
    page = client.get("/").text
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert csrf, page
    client.headers["X-CSRF-Token"] = csrf.group(1)


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot as ``artifacts/<name>.png`` (look at it) and return its path."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    return path
