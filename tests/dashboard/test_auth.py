"""Logging in and sessions, against the real dashboard process: fixation, logout, open redirects, the login
throttle (per name and address, rotating names, a stranger cannot keep a user out), sessions ending with their
user in users.json, cookie flags (in a real browser, and Secure under TLS)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from splice.dashboard import Users, create_app, load_dashboard_settings
from splice.dashboard.auth import IDLE_SECONDS, MAX_AGE, MAX_PER_USER, Sessions
from splice.dashboard.throttle import FREE_PER_ADDRESS, FREE_PER_NAME, FREE_PER_PAIR, MAX_WAIT, Throttle
from tests.conftest import eventually
from tests.dashboard.conftest import PASSWORD, Dashboard, login

SESSION = "splice_session"


def client(dash: Dashboard, address: str = "127.0.0.1") -> httpx.Client:
    """An httpx client whose requests come from ``address`` (any 127.x.y.z: a throttle of its own)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=dash.url, transport=transport, timeout=30, headers={"Accept": "text/html"})


def post_login(http: httpx.Client, name: str, password: str = PASSWORD, next_path: str = "/") -> httpx.Response:
    form = http.get("/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token, form
    return http.post("/login", data={"username": name, "password": password, "csrf": token.group(1), "next": next_path})


def csrf_of(http: httpx.Client) -> str:
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', http.get("/").text)
    assert found
    return found.group(1)


def new_user(dash: Dashboard, role: str = "admin") -> str:
    """A user of this test's own, added to the running dashboard's users.json (it reads the file again)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    Users(dash.directory / "users.json").create(name, PASSWORD, role)  # type: ignore[arg-type]
    return name


def logged_in(http: httpx.Client) -> bool:
    return http.get("/", follow_redirects=False).status_code == 200


def test_a_session_id_from_before_the_login_is_not_kept(dash: Dashboard) -> None:
    with client(dash) as http:
        http.cookies.set(SESSION, "planted-by-someone-else", domain="127.0.0.1")
        assert post_login(http, "admin").status_code == 303
        first = http.cookies[SESSION]
        assert first != "planted-by-someone-else"
        assert logged_in(http)
        # logging in again in the same browser: a new id, and the old one no longer works
        assert post_login(http, "admin").status_code == 303
        second = http.cookies[SESSION]
        assert second != first
    with client(dash) as other:
        other.cookies.set(SESSION, first, domain="127.0.0.1")
        answer = other.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=%2F"


def test_logout_ends_the_session_in_the_dashboard(dash: Dashboard) -> None:
    with client(dash) as http:
        assert post_login(http, "viewer").status_code == 303
        sid = http.cookies[SESSION]
        answer = http.post("/logout", headers={"X-CSRF-Token": csrf_of(http)})
        assert answer.status_code == 303
        assert SESSION not in http.cookies
    with client(dash) as replay:
        replay.cookies.set(SESSION, sid, domain="127.0.0.1")
        assert replay.get("/").status_code == 303
        assert replay.get("/", headers={"HX-Request": "true"}).status_code == 401


@pytest.mark.parametrize(
    "target", ["//evil.example", "https://evil.example", "/\\evil.example", "%2F%2Fevil", "/\t/evil.example", "evil"]
)
def test_no_redirect_off_the_dashboard_after_login(dash: Dashboard, target: str) -> None:
    with client(dash) as http:
        answer = post_login(http, "viewer", next_path=target)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"


@pytest.mark.parametrize("query", ["//evil.example", "https://evil.example", "/%5Cevil", "%2F%2Fevil", "%2F%09%2Fevil"])
def test_the_login_page_keeps_only_a_local_next(dash: Dashboard, query: str) -> None:
    with client(dash) as http:
        form = http.get(f"/login?next={query}").text
        assert 'name="next" value="/"' in form


def test_a_local_next_is_where_the_login_goes(dash: Dashboard) -> None:
    with client(dash) as http:
        form = http.get("/login?next=%2Fservices%3Fq%3Dorders").text
        assert 'name="next" value="/services?q=orders"' in form
        answer = post_login(http, "viewer", next_path="/services?q=orders")
        assert answer.headers["location"] == "/services?q=orders"


def test_failed_logins_wait_then_the_right_password_works(dash: Dashboard) -> None:
    name = new_user(dash)
    with client(dash, "127.0.0.2") as http:
        for _ in range(FREE_PER_PAIR):
            answer = post_login(http, name, "not-the-password")
            assert answer.status_code == 401
            assert "Wrong user name or password." in answer.text
        refused = post_login(http, name, "not-the-password")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert "Too many failed logins" in refused.text
        assert post_login(http, name).status_code in (303, 429)  # the right one waits too, unless the wait is over
        eventually(lambda: post_login(http, name).status_code == 303)
        assert logged_in(http)
    log = dash.log
    assert re.search(rf"WARNING .*dashboard login failed for '{name}' from 127\.0\.0\.2", log), log[-2000:]
    assert re.search(rf"WARNING .*dashboard login for '{name}' from 127\.0\.0\.2 refused: too many", log)
    assert "not-the-password" not in log


def test_rotating_user_names_from_one_address_waits_too(dash: Dashboard) -> None:
    with client(dash, "127.0.0.3") as http:
        for i in range(FREE_PER_ADDRESS):
            assert post_login(http, f"guess-{i}-{uuid.uuid4().hex[:6]}", "password1").status_code == 401
        answer = post_login(http, f"guess-last-{uuid.uuid4().hex[:6]}", "password1")
        assert answer.status_code == 429
        assert "Retry-After" in answer.headers


def test_a_stranger_guessing_a_users_password_cannot_keep_them_out(dash: Dashboard) -> None:
    name = new_user(dash)
    with client(dash, "127.0.0.30") as own:
        assert post_login(own, name).status_code == 303  # the user's own browser, before the guessing
        device = own.cookies.get("splice_device")
    assert device
    for i in range(FREE_PER_NAME + 3):  # each guess from another address; beyond the free ones, after the wait
        with client(dash, f"127.0.1.{i + 1}") as stranger:
            eventually(lambda: post_login(stranger, name, "guess-guess").status_code == 401)
    with client(dash, "127.0.0.31") as elsewhere:
        assert post_login(elsewhere, name).status_code == 429  # the name is being guessed: a new browser waits
    with client(dash, "127.0.0.30") as own:
        own.cookies.set("splice_device", device, domain="127.0.0.1", path="/login")
        assert post_login(own, name).status_code == 303  # the browser that logged in before does not


def test_a_deleted_user_or_a_new_password_ends_their_sessions(dash: Dashboard) -> None:
    gone, changed = new_user(dash), new_user(dash, "viewer")
    with client(dash) as first, client(dash) as second:
        assert post_login(first, gone).status_code == 303
        assert post_login(second, changed).status_code == 303
        assert logged_in(first)
        assert logged_in(second)
        Users(dash.directory / "users.json").delete(gone)
        eventually(lambda: not logged_in(first))
        assert logged_in(second)
        Users(dash.directory / "users.json").set_password(changed, "another password")
        eventually(lambda: not logged_in(second))
        assert post_login(second, changed, "another password").status_code == 303


def test_the_event_stream_ends_with_its_session(dash: Dashboard) -> None:
    name = new_user(dash)
    with client(dash) as http:
        assert post_login(http, name).status_code == 303
        with http.stream("GET", "/events", headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            chunks = stream.iter_raw()
            assert next(chunks).startswith(b"retry:")
            Users(dash.directory / "users.json").delete(name)
            for _ in chunks:  # ends (a tick comes every few seconds) instead of streaming on
                pass
    eventually(lambda: f"a stream of {name} (/events) ended with its session" in dash.log)


def test_session_cookie_is_httponly_and_samesite_in_a_browser(dash: Dashboard, page: object) -> None:
    login(page, dash, "viewer")
    cookies = {c["name"]: c for c in page.context.cookies()}  # type: ignore[attr-defined]
    session = cookies[SESSION]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["secure"] is False  # plain HTTP here; see the TLS test
    assert cookies["splice_device"]["httpOnly"] is True
    assert cookies["splice_device"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # type: ignore[attr-defined]


def test_cookies_are_secure_under_tls(dash: Dashboard) -> None:
    settings = load_dashboard_settings(dash.directory)
    tls = dataclasses.replace(settings, tls_cert=Path("cert.pem"), tls_key=Path("key.pem"))
    app = create_app(tls)  # in this process, without its lifespan: logging in needs no admin API

    async def log_in() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://dashboard.test") as http:
            form = await http.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token
            data = {"username": "viewer", "password": PASSWORD, "csrf": token.group(1)}
            return form, await http.post("/login", data=data)

    with ThreadPoolExecutor(1) as thread:  # a loop of its own: Playwright's sync API holds this thread's
        form, answer = thread.submit(asyncio.run, log_in()).result()
    assert "; secure" in form.headers["set-cookie"].lower()
    assert answer.status_code == 303
    cookies = {c.split("=", 1)[0]: c.lower() for c in answer.headers.get_list("set-cookie")}
    assert "; secure" in cookies[SESSION]
    assert "; httponly" in cookies[SESSION]
    assert "samesite=lax" in cookies[SESSION]
    assert "; secure" in cookies["splice_device"]


def test_login_form_needs_its_token_and_is_small(dash: Dashboard) -> None:
    with client(dash, "127.0.0.4") as http:
        http.get("/login")
        no_token = http.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": ""})
        assert no_token.status_code == 403
        made_up = http.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": "x.y"})
        assert made_up.status_code == 403
        http.cookies.set("splice_login_csrf", "x.y", domain="127.0.0.1", path="/login")
        planted = http.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": "x.y"})
        assert planted.status_code == 403
        big = http.post("/login", data={"username": "admin", "password": "x" * 5000, "csrf": "x"})
        assert big.status_code == 413


# The classes behind it, in this process (their clocks given, not waited for).


def test_the_wait_is_capped_and_ends() -> None:
    throttle = Throttle(b"key")
    for _ in range(100):
        throttle.attempt("ada", "10.0.0.1", now=1000.0)
    assert 0 < throttle.wait("ada", "10.0.0.1", now=1000.0) <= MAX_WAIT
    assert throttle.wait("ada", "10.0.0.9", now=1000.0) <= MAX_WAIT  # others: the per-name count, capped too
    assert throttle.wait("ada", "10.0.0.1", now=1000.0 + MAX_WAIT) == 0
    assert throttle.wait("ada", "10.0.0.9", throttle.device_token("ada"), now=1000.0) == 0
    assert throttle.wait("ada", "10.0.0.9", throttle.device_token("bob"), now=1000.0) > 0


def test_a_success_takes_its_own_try_back() -> None:
    throttle = Throttle(b"key")
    for _ in range(FREE_PER_PAIR - 1):
        throttle.attempt("ada", "10.0.0.1", now=5.0)
    throttle.succeeded(throttle.attempt("ada", "10.0.0.1", now=5.0))
    assert throttle.wait("ada", "10.0.0.1", now=5.0) == 0
    assert throttle.failures(throttle.attempt("ada", "10.0.0.1", now=6.0)) == 1


def test_sessions_end_idle_old_and_beyond_the_per_user_cap(tmp_path: Path) -> None:
    users = Users(tmp_path / "users.json")
    users.create("ada", PASSWORD, "admin")
    sessions = Sessions(users)
    user = users.get("ada")
    assert user is not None
    idle, old = sessions.start(user), sessions.start(user)
    idle.seen -= IDLE_SECONDS + 1
    old.created -= MAX_AGE + 1
    assert sessions.get(idle.id) is None
    assert sessions.get(old.id) is None
    many = [sessions.start(user) for _ in range(MAX_PER_USER + 5)]
    assert len(sessions) == MAX_PER_USER
    assert sessions.get(many[0].id) is None
    assert sessions.get(many[-1].id) is many[-1]
