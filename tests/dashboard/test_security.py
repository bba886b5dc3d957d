"""Every route of the dashboard is closed without a session, every change needs the CSRF token and an admin; the
security headers are on every answer; nothing a request sends comes back unescaped; the CSP holds in a real
browser (no violation on any screen)."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from starlette.routing import BaseRoute, Mount, Route

from splice.dashboard import Users, create_app, load_dashboard_settings
from splice.dashboard.headers import CONTENT_SECURITY_POLICY
from splice.dashboard.screens import SCREENS
from tests.conftest import eventually
from tests.dashboard.conftest import PASSWORD, Dashboard, http, login, shot
from tests.dashboard.test_auth import client, new_user, post_login

OPEN = {"/login", "/healthz"}
XSS = "<script>alert(1)</script>"


def _walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    for route in routes:
        if isinstance(route, Mount):
            if route.path != "/static":
                yield from _walk(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, set(route.methods or {"GET"})


def _concrete(path: str) -> str:
    """A path of the route: ``{name}`` and ``{name:path}`` get a value, ``{n:int}`` a number."""
    return re.sub(r"\{\w+(:(\w+))?\}", lambda m: "1" if m.group(2) in ("int", "float") else "probe", path)


def routes(dash: Dashboard) -> list[tuple[str, str]]:
    """(method, path) for every route of the app as the screens made it, the open ones left out."""
    app = create_app(load_dashboard_settings(dash.directory))
    found = sorted(
        (method, _concrete(path)) for path, methods in _walk(list(app.routes)) if path not in OPEN for method in methods
    )
    assert ("GET", "/") in found
    assert ("POST", "/logout") in found
    return found


def test_without_a_session_pages_go_to_the_login_and_the_rest_answers_401(dash: Dashboard) -> None:
    with client(dash) as anonymous:
        for method, path in routes(dash):
            if method in ("GET", "HEAD") and path != "/events":
                page = anonymous.request(method, path, headers={"Accept": "text/html"})
                assert page.status_code == 303, (method, path)
                assert page.headers["location"] == f"/login?next={quote(path, safe='')}", (method, path)
                for accept in ("application/json", "text/event-stream"):
                    other = anonymous.request(method, path, headers={"Accept": accept})
                    assert other.status_code == 401, (method, path, accept)
                htmx = {"HX-Request": "true", "HX-Current-URL": f"{dash.url}/services?q=a"}
                fragment = anonymous.request(method, path, headers=htmx)
                assert fragment.status_code == 401, (method, path)
                assert fragment.headers["HX-Redirect"] == "/login?next=%2Fservices%3Fq%3Da"
            else:
                answer = anonymous.request(method, path, headers={"Accept": "text/html"})
                assert answer.status_code == 401, (method, path)
                if method != "HEAD":
                    assert answer.json() == {"error": "not logged in", "login": "/login"}


def test_a_change_needs_the_csrf_token(dash: Dashboard) -> None:
    changes = [(m, p) for m, p in routes(dash) if m not in ("GET", "HEAD")]
    assert changes
    with http(dash, "admin") as admin:
        token = admin.headers.pop("X-CSRF-Token")
        for method, path in changes:
            assert admin.request(method, path).status_code == 403, (method, path)
            wrong = admin.request(method, path, headers={"X-CSRF-Token": token[:-2] + "xx"})
            assert wrong.status_code == 403, (method, path)
            assert "CSRF" in wrong.text
            cross = admin.request(method, path, headers={"X-CSRF-Token": token, "Sec-Fetch-Site": "cross-site"})
            assert cross.status_code == 403, (method, path)
        assert admin.get("/").status_code == 200  # still logged in: nothing above ended the session


def test_a_viewer_changes_nothing(dash: Dashboard) -> None:
    changes = [(m, p) for m, p in routes(dash) if m not in ("GET", "HEAD") and p != "/logout"]
    with http(dash, "viewer") as viewer:
        for method, path in changes:
            answer = viewer.request(method, path)
            assert answer.status_code == 403, (method, path)
            assert "viewer is a viewer and may look but not change anything" in answer.text


def test_head_is_answered_like_get(dash: Dashboard) -> None:
    with client(dash) as anonymous:
        answer = anonymous.head("/services", headers={"Accept": "text/html"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2Fservices"
    with http(dash, "viewer") as viewer:
        answer = viewer.head("/")
        assert answer.status_code == 200
        assert answer.content == b""
        assert answer.headers["content-type"].startswith("text/html")
        events = viewer.head("/events", headers={"Accept": "text/event-stream"})
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")


def test_security_headers_on_every_kind_of_answer(dash: Dashboard) -> None:
    with client(dash) as anonymous, http(dash, "viewer") as viewer:
        answers = {
            "login": anonymous.get("/login"),
            "redirect": anonymous.get("/"),
            "401": anonymous.get("/", headers={"HX-Request": "true"}),
            "page": viewer.get("/"),
            "404": viewer.get("/no/such/page"),
            "403": viewer.post("/logout", headers={"X-CSRF-Token": "wrong"}),
            "static": anonymous.get("/static/splice.css"),
        }
    for kind, answer in answers.items():
        headers = answer.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, kind
        assert headers["x-content-type-options"] == "nosniff", kind
        assert headers["referrer-policy"] == "same-origin", kind
        assert headers["x-frame-options"] == "DENY", kind
        if kind == "static":
            assert headers.get("cache-control") != "no-store"
        else:
            assert headers["cache-control"] == "no-store", kind
    assert answers["404"].status_code == 404


def test_nothing_sent_comes_back_unescaped(dash: Dashboard) -> None:
    with http(dash, "viewer") as viewer:
        missing = viewer.get(f"/{XSS}")
        assert missing.status_code == 404
        assert XSS not in missing.text
        assert "alert(1)" not in missing.text  # the 404 page names no path at all
        for path in (f"/services?q={quote(XSS)}", f"/logs?cid={quote(XSS)}"):
            assert XSS not in viewer.get(path).text, path
    with client(dash, "127.0.0.5") as anonymous:
        redirect = anonymous.get(f"/{XSS}")
        assert redirect.status_code == 303
        assert "<" not in redirect.headers["location"]
        form = anonymous.get(redirect.headers["location"])
        assert form.status_code == 200
        assert XSS not in form.text
        assert 'value="/&lt;script&gt;alert(1)&lt;/script&gt;"' in form.text
        refused = post_login(anonymous, XSS, "not-the-password")
        assert refused.status_code == 401
        assert XSS not in refused.text
        assert "alert(1)" not in refused.text  # the login page does not repeat the name


def test_the_users_file_is_private(dash: Dashboard) -> None:
    path = dash.directory / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD not in path.read_text()


def test_no_csp_violation_on_any_screen_in_a_browser(dash: Dashboard, page: object) -> None:
    messages: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))  # type: ignore[attr-defined]
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))  # type: ignore[attr-defined]
    login(page, dash, "admin")
    for screen in SCREENS:
        page.goto(dash.url + screen.path)  # type: ignore[attr-defined]
        page.wait_for_function("window.htmx !== undefined && document.readyState === 'complete'")  # type: ignore[attr-defined]
    # something the policy refuses is reported there (the listening above could see a violation)
    page.goto(f"{dash.url}/{XSS}")  # type: ignore[attr-defined]
    shot(page, "security-not-found")
    violations = [m for m in messages if "Content Security Policy" in m]
    assert violations == [], violations
    page.evaluate(
        "() => { const s = document.createElement('style'); s.textContent = 'body{}'; document.head.append(s); }"
    )  # type: ignore[attr-defined]
    eventually(lambda: any("Content Security Policy" in m for m in messages))
    assert dialogs == []


@pytest.mark.parametrize("user", ["admin", "viewer"])
def test_the_page_gives_htmx_the_session_token_and_no_inline_script(dash: Dashboard, user: str) -> None:
    with http(dash, user) as logged_in:
        for screen in SCREENS:
            text = logged_in.get(screen.path).text
            assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), screen.path
            assert not re.search(r"\sstyle=", text), screen.path
            assert not re.search(r"\son\w+=", text), screen.path
            assert '"includeIndicatorStyles":false' in text


def test_log_out_in_a_browser(dash: Dashboard, page: object) -> None:
    login(page, dash, "viewer")
    page.get_by_role("button", name="Log out").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"{dash.url}/login")  # type: ignore[attr-defined]
    page.goto(dash.url + "/services")  # type: ignore[attr-defined]
    assert "/login?next=%2Fservices" in page.url  # type: ignore[attr-defined]


def test_an_htmx_request_after_the_session_ended_goes_to_the_login(dash: Dashboard, page: object) -> None:
    name = new_user(dash)
    login(page, dash, name, next_path="/services")
    Users(dash.directory / "users.json").delete(name)
    eventually(lambda: not _alive(dash, page))
    page.get_by_role("button", name="Log out").click()  # type: ignore[attr-defined]  # an hx-post: 401
    page.wait_for_url(f"{dash.url}/login?next=%2Fservices")  # type: ignore[attr-defined]


def _alive(dash: Dashboard, page: object) -> bool:
    cookie = next(c for c in page.context.cookies() if c["name"] == "splice_session")  # type: ignore[attr-defined]
    with client(dash) as other:
        other.cookies.set("splice_session", cookie["value"], domain="127.0.0.1")
        return other.get("/").status_code == 200


def test_login_password_is_never_logged(dash: Dashboard) -> None:
    with client(dash, "127.0.0.6") as anonymous:
        post_login(anonymous, "admin", "a-wrong-secret-0123")
    eventually(lambda: "dashboard login failed for 'admin' from 127.0.0.6" in dash.log)
    assert "a-wrong-secret-0123" not in dash.log


def test_an_http_exception_body_is_plain_text(dash: Dashboard) -> None:
    # 405 and the like: Starlette's plain text (the nosniff header keeps a browser from reading it as HTML)
    with http(dash, "admin") as admin:
        answer = admin.request("PUT", "/")
        assert answer.status_code == 405
        assert answer.headers["content-type"].startswith("text/plain")
