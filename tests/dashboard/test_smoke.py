"""The dashboard process answers, sends a page without a session to the login page, and logs a user in."""

from __future__ import annotations

from tests.dashboard.conftest import Dashboard, http, login, shot


def test_login_page_then_the_cluster_screen(dash: Dashboard, page: object) -> None:
    page.goto(dash.url + "/services")  # type: ignore[attr-defined]
    assert "/login?next=%2Fservices" in page.url  # type: ignore[attr-defined]
    login(page, dash, next_path="/services")
    assert page.url.endswith("/services")  # type: ignore[attr-defined]
    shot(page, "smoke-services")


def test_an_http_client_logs_in(dash: Dashboard) -> None:
    with http(dash) as client:
        assert client.get("/").status_code == 200
