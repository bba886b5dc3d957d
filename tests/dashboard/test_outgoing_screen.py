"""The Outgoing screen: connections made and changed in the browser, pinged from every server; refusals shown."""

from __future__ import annotations

import uuid

from tests.dashboard.conftest import Dashboard, login, shot


def test_a_rest_connection_to_the_cluster_itself_pings_ok_on_both_servers(dash: Dashboard, page: object) -> None:
    suffix = uuid.uuid4().hex[:8]
    name = f"self-{suffix}"
    token = f"t0k3n-{uuid.uuid4().hex}"
    login(page, dash, next_path="/outgoing")
    page.select_option("#outgoing-kind", "rest")  # type: ignore[attr-defined]
    page.fill("#outgoing-name", name)  # type: ignore[attr-defined]
    page.fill("#outgoing-address", dash.cluster.url)  # type: ignore[attr-defined]
    page.fill("#outgoing-timeout", "7.5")  # type: ignore[attr-defined]
    page.fill("#outgoing-headers", "X-From: dashboard")  # type: ignore[attr-defined]
    page.fill("#outgoing-token", token)  # type: ignore[attr-defined]
    page.click("#outgoing-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#outgoing-result").get_by_text(f"Connection {name} created").wait_for()  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-outgoing="{name}"]')  # type: ignore[attr-defined]
    row.wait_for()
    text = row.inner_text()
    assert "token ***" in text
    assert "timeout 7.5" in text
    assert token not in page.content()  # type: ignore[attr-defined]

    page.click(f'tr[data-outgoing="{name}"] button:has-text("Ping")')  # type: ignore[attr-defined]
    ping = page.locator("#ping")  # type: ignore[attr-defined]
    ping.wait_for()
    for server in ("server1", "server2"):
        cells = page.locator(f'#ping tr[data-server="{server}"] td')  # type: ignore[attr-defined]
        assert cells.nth(1).inner_text() == "ok", ping.inner_text()
        assert cells.nth(2).inner_text().endswith(" ms")
    shot(page, "outgoing")

    # Edit: the form comes filled in, the token empty; an empty secret keeps the stored one.
    page.click(f'tr[data-outgoing="{name}"] button:has-text("Edit")')  # type: ignore[attr-defined]
    page.locator("#outgoing-form input[name=editing]").wait_for(state="attached")  # type: ignore[attr-defined]
    assert page.input_value("#outgoing-timeout") == "7.5"  # type: ignore[attr-defined]
    assert page.input_value("#outgoing-headers") == "X-From: dashboard"  # type: ignore[attr-defined]
    assert page.input_value("#outgoing-token") == ""  # type: ignore[attr-defined]
    assert "the stored secret is kept" in page.locator("#outgoing-token-hint").inner_text()  # type: ignore[attr-defined]
    page.fill("#outgoing-retries", "4")  # type: ignore[attr-defined]
    page.click("#outgoing-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#outgoing-result").get_by_text(f"Connection {name} changed").wait_for()  # type: ignore[attr-defined]
    with dash.cluster.admin() as admin:
        stored = admin.get(f"/splice/admin/outgoing/{name}").json()
    assert stored["retries"] == 4
    assert stored["timeout"] == 7.5
    assert stored["token"] == "***"

    # Delete.
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click(f'tr[data-outgoing="{name}"] button:has-text("Delete")')  # type: ignore[attr-defined]
    page.locator("#outgoing-result").get_by_text(f"Connection {name} deleted").wait_for()  # type: ignore[attr-defined]
    page.locator(f'tr[data-outgoing="{name}"]').wait_for(state="detached")  # type: ignore[attr-defined]


def test_a_redis_connection_pings_and_a_bad_one_is_refused(dash: Dashboard, page: object) -> None:
    suffix = uuid.uuid4().hex[:8]
    login(page, dash, next_path="/outgoing")
    page.select_option("#outgoing-kind", "redis")  # type: ignore[attr-defined]
    page.locator("#outgoing-max_connections").wait_for()  # type: ignore[attr-defined]
    page.fill("#outgoing-name", f"cache-{suffix}")  # type: ignore[attr-defined]
    page.fill("#outgoing-address", "redis://127.0.0.1:6379/0")  # type: ignore[attr-defined]
    page.press("#outgoing-address", "Enter")  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-outgoing="cache-{suffix}"]')  # type: ignore[attr-defined]
    row.wait_for()
    row.locator("button:has-text('Ping')").click()
    page.locator("#ping").wait_for()  # type: ignore[attr-defined]
    outcomes = page.locator("#ping tbody tr td:nth-child(2)").all_inner_texts()  # type: ignore[attr-defined]
    assert outcomes == ["ok", "ok"]

    # Refused: a password inside the address, and a timeout that is no number; each under its field.
    page.select_option("#outgoing-kind", "redis")  # type: ignore[attr-defined]
    page.fill("#outgoing-name", f"bad-{suffix}")  # type: ignore[attr-defined]
    page.fill("#outgoing-address", "redis://user:pw@127.0.0.1:6379/0")  # type: ignore[attr-defined]
    page.fill("#outgoing-timeout", "soon")  # type: ignore[attr-defined]
    page.fill("#outgoing-password", "kept-out-of-pages")  # type: ignore[attr-defined]
    page.click("#outgoing-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#outgoing-address-problem").wait_for()  # type: ignore[attr-defined]
    assert "must not hold a password" in page.locator("#outgoing-address-problem").inner_text()  # type: ignore[attr-defined]
    assert "number" in page.locator("#outgoing-timeout-problem").inner_text()  # type: ignore[attr-defined]
    assert "Refused (400)" in page.locator("#outgoing-result").inner_text()  # type: ignore[attr-defined]
    assert page.input_value("#outgoing-password") == ""  # type: ignore[attr-defined]
    assert "kept-out-of-pages" not in page.content()  # type: ignore[attr-defined]
    assert page.input_value("#outgoing-timeout") == "soon"  # type: ignore[attr-defined]
    shot(page, "outgoing-refused")

    # A connection nothing answers at: ping says failed, with the error, per server.
    page.select_option("#outgoing-kind", "rest")  # type: ignore[attr-defined]
    page.fill("#outgoing-name", f"nowhere-{suffix}")  # type: ignore[attr-defined]
    page.fill("#outgoing-address", "http://127.0.0.1:9")  # type: ignore[attr-defined]
    page.fill("#outgoing-timeout", "")  # type: ignore[attr-defined]
    page.fill("#outgoing-retries", "0")  # type: ignore[attr-defined]
    page.click("#outgoing-form button[type=submit]")  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-outgoing="nowhere-{suffix}"]')  # type: ignore[attr-defined]
    row.wait_for()
    row.locator("button:has-text('Ping')").click()
    page.locator("#ping-result").get_by_text(f"Ping nowhere-{suffix}: failed").wait_for()  # type: ignore[attr-defined]
    failed = page.locator("#ping tbody tr").all_inner_texts()  # type: ignore[attr-defined]
    assert len(failed) == 2
    assert all("failed" in line for line in failed), failed


def test_a_submitted_form_becomes_the_admin_api_body_by_declared_type() -> None:
    from splice.dashboard.screens import _forms
    from splice.server.http.admin import OPERATIONS
    from splice.server.http.openapi import document

    kinds = _forms.kinds_from(document("http://x", OPERATIONS), "/outgoing")
    assert next(iter(kinds)) == "rest"
    form = {
        "address": " http://a.example ",
        "timeout": "7.5",
        "retries": "3",
        "max_connections": "many",
        "verify": "false",
        "headers": "X-A: 1\nX-B: two words",
        "token": " spaced secret ",
        "username": "",
    }
    body = _forms.body(kinds["rest"], form, name="up")
    assert body == {
        "name": "up",
        "kind": "rest",
        "address": "http://a.example",
        "timeout": 7.5,
        "retries": 3,
        "max_connections": "many",  # sent as typed: the admin API refuses it in its own words
        "verify": False,
        "headers": {"X-A": "1", "X-B": "two words"},
        "token": " spaced secret ",
    }
    assert "token" not in _forms.typed(kinds["rest"], {"token": "x", "address": "y"})
    channel = _forms.kinds_from(document("http://x", OPERATIONS), "/channels")["rest"]
    assert _forms.body(channel, {"methods": "GET, post", "path": "/x"}, name="c")["methods"] == ["GET", "post"]
