"""The Cluster screen: both servers live and in step, their details, the bus, the scheduler and the balancer."""

from __future__ import annotations

from playwright.sync_api import expect

from splice.dashboard.screens.cluster import duration
from tests.dashboard.conftest import Dashboard, http, login, shot


def test_uptimes_read_at_a_glance() -> None:
    assert [duration(s) for s in (-1, 12, 303, 7500, 3 * 86400 + 4 * 3600 + 5)] == [
        "0 s",
        "12 s",
        "5 min 3 s",
        "2 h 5 min",
        "3 d 4 h",
    ]


def test_both_servers_live_with_their_details(dash: Dashboard, page: object) -> None:
    login(page, dash, next_path="/")
    for name in ("server1", "server2"):
        row = page.locator(f'#servers tr[data-server="{name}"]')  # type: ignore[attr-defined]
        expect(row).to_contain_text("live")
        expect(row).to_contain_text("in step")
        expect(row).to_contain_text("not listening")  # no debugger attach point
    expect(page.locator("#bus-title + p")).to_contain_text("connected")  # type: ignore[attr-defined]
    expect(page.locator("#scheduler-title + p")).to_contain_text("active")  # type: ignore[attr-defined]
    balancer = page.locator("#balancer-title ~ p")  # type: ignore[attr-defined]
    if dash.cluster.load_balancer:
        expect(balancer).to_contain_text(dash.cluster.load_balancer)
        expect(balancer).to_contain_text("answers")
    else:
        expect(balancer).to_have_text("none")
    assert page.locator("h1").count() == 1  # type: ignore[attr-defined]
    shot(page, "cluster")


def test_the_live_region_alone(dash: Dashboard) -> None:
    with http(dash, "viewer") as client:
        answer = client.get("/cluster/live")
    assert answer.status_code == 200
    assert answer.text.count("<tr data-server=") == 2
    assert 'hx-trigger="sse:cluster, sse:changed"' in answer.text
