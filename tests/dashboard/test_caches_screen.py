"""The Caches screen against a real two-server cluster in a real browser: caches with each server's figures, an
entry set from the browser read back on both servers through the admin API, browsing by prefix, delete, clear."""

from __future__ import annotations

import json
import secrets

import httpx
from playwright.sync_api import expect

from tests.conftest import eventually
from tests.dashboard.axe import describe, violations
from tests.dashboard.conftest import Dashboard, http, login, shot

expect.set_options(timeout=15_000)  # a change waits for every server to reload: seconds on a busy 2-core machine


def entry_on(url: str, token: str, cache: str, key: str) -> httpx.Response:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        return client.get(f"/splice/admin/caches/{cache}/entries/{key}")


def test_the_caches_list_shows_each_servers_figures_and_defines_a_cache(dash: Dashboard, page: object) -> None:
    name = f"dash-cache-{secrets.token_hex(3)}"
    login(page, dash, next_path="/caches")
    default = page.locator('#caches tr[data-cache="default"]')  # type: ignore[attr-defined]
    expect(default).to_contain_text("memory")
    for server in ("server1", "server2"):
        expect(default.locator(f'td[data-server="{server}"]')).to_contain_text("hits")
    page.fill("#cache-name", name)  # type: ignore[attr-defined]
    page.fill("#cache-max-entries", "none")  # type: ignore[attr-defined]
    page.click("#cache-form button[type=submit]")  # type: ignore[attr-defined]
    result = page.locator("#cache-form-result")  # type: ignore[attr-defined]
    expect(result).to_contain_text("Refused")
    expect(result.locator("code", has_text="max_entries")).to_be_visible()
    page.fill("#cache-max-entries", "500")  # type: ignore[attr-defined]
    page.click("#cache-form button[type=submit]")  # type: ignore[attr-defined]
    expect(result).to_contain_text(f"Cache '{name}' defined")
    row = page.locator(f'#caches tr[data-cache="{name}"]')  # type: ignore[attr-defined]
    expect(row).to_contain_text("500 entries")
    shot(page, "caches")
    row.get_by_role("button", name="Change").click()
    expect(page.locator("#cache-form h2")).to_contain_text(f"Change cache {name}")  # type: ignore[attr-defined]
    page.fill("#cache-max-entries", "700")  # type: ignore[attr-defined]
    page.click("#cache-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#cache-form-result")).to_contain_text("changed")  # type: ignore[attr-defined]
    expect(row).to_contain_text("700 entries")
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#caches-result")).to_contain_text("deleted")  # type: ignore[attr-defined]
    expect(row).to_have_count(0)


def test_set_browse_view_delete_and_clear_entries_from_the_browser(dash: Dashboard, page: object) -> None:
    tag = secrets.token_hex(3)
    key = f"dash:{tag}:rate"
    login(page, dash, next_path="/caches/default")
    page.fill("#entry-key", key)  # type: ignore[attr-defined]
    page.fill("#entry-value", '{"rate": 1.08,\n "ccy" "EUR"}')  # type: ignore[attr-defined]
    page.click("#entry-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#entry-result")).to_contain_text("line 2, column 8")  # type: ignore[attr-defined]
    page.fill("#entry-value", '{"rate": 1.08, "ccy": "EUR"}')  # type: ignore[attr-defined]
    page.fill("#entry-expiry", "600")  # type: ignore[attr-defined]
    page.click("#entry-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#entry-result")).to_contain_text(f"Entry '{key}' set")  # type: ignore[attr-defined]

    token = dash.cluster.token
    for url in dash.cluster.urls:  # every server holds it (a memory cache: over the cluster bus)

        def held(url: str = url) -> bool:
            answer = entry_on(url, token, "default", key)
            return answer.status_code == 200 and answer.json()["value"] == {"rate": 1.08, "ccy": "EUR"}

        eventually(held)
        assert 0 < entry_on(url, token, "default", key).json()["expires_in"] <= 600

    with dash.cluster.admin() as admin:
        for n in range(3):
            body = {"value": n}
            assert admin.put(f"/splice/admin/caches/default/entries/dash:{tag}:n{n}", json=body).status_code == 200
    page.fill("#keys-prefix", f"dash:{tag}:n")  # type: ignore[attr-defined]
    page.click("#keys-form button[type=submit]")  # type: ignore[attr-defined]
    rows = page.locator("#entries tbody tr[data-key]")  # type: ignore[attr-defined]
    expect(rows).to_have_count(3)
    page.fill("#keys-prefix", f"dash:{tag}:")  # type: ignore[attr-defined]
    page.fill("#keys-limit", "2")  # type: ignore[attr-defined]
    page.click("#keys-form button[type=submit]")  # type: ignore[attr-defined]
    expect(rows).to_have_count(2)
    expect(page.locator("#entries caption")).to_contain_text("more match")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Show 200 more").click()  # type: ignore[attr-defined]
    expect(rows).to_have_count(4)

    page.locator(f'#entries tr[data-key="{key}"]').get_by_role("button", name="View").click()  # type: ignore[attr-defined]
    expect(page.locator("#entry-key")).to_have_value(key)  # type: ignore[attr-defined]
    assert json.loads(page.input_value("#entry-value")) == {"rate": 1.08, "ccy": "EUR"}  # type: ignore[attr-defined]
    shot(page, "cache")
    found = violations(page)
    assert not found, describe(found)

    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.locator(f'#entries tr[data-key="dash:{tag}:n0"]').get_by_role("button", name="Delete").click()  # type: ignore[attr-defined]
    expect(page.locator("#entry-result")).to_contain_text("deleted")  # type: ignore[attr-defined]
    expect(rows).to_have_count(3)
    for url in dash.cluster.urls:
        eventually(lambda url=url: entry_on(url, token, "default", f"dash:{tag}:n0").status_code == 404)

    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Clear cache").click()  # type: ignore[attr-defined]
    expect(page.locator("#entry-result")).to_contain_text("cleared")  # type: ignore[attr-defined]
    expect(rows).to_have_count(0)
    for url in dash.cluster.urls:
        eventually(lambda url=url: entry_on(url, token, "default", key).status_code == 404)


def test_a_viewer_sees_but_cannot_change(dash: Dashboard) -> None:
    with http(dash, "viewer") as client:
        assert "viewers cannot change anything" in client.get("/caches/default").text
        assert client.post("/caches/-/clear?name=default").status_code == 403
