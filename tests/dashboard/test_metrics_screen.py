"""The Metrics screen against a real two-server cluster in a real browser: after a service is called a few times
its charts (inline SVG, each with a title saying what it shows) are on the page, and on its own page."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect

from tests.dashboard.axe import describe, violations
from tests.dashboard.conftest import Dashboard, http, login, shot

expect.set_options(timeout=15_000)

SOURCE = """
from splice.server import Service


class Priced(Service):
    name = "SERVICE"

    def handle(self) -> None:
        if self.request.payload.get("fail"):
            raise ValueError("asked to fail")
        self.response.payload = {"price": 12.5}
"""


def test_charts_of_the_cluster_the_servers_and_a_called_service(dash: Dashboard, page: object) -> None:
    tag = secrets.token_hex(3)
    service = f"dash.metrics{tag}"
    with dash.cluster.admin() as admin:
        body = {"modules": [{"path": f"dash_metrics_{tag}.py", "source": SOURCE.replace("SERVICE", service)}]}
        assert admin.post("/splice/admin/deploy", json=body).status_code == 200
        for n in range(6):
            payload = {"fail": n == 5}
            admin.post("/splice/admin/invoke", json={"service": service, "payload": payload})

    login(page, dash, next_path="/metrics")
    charts = page.locator("#metrics-live svg[role=img]")  # type: ignore[attr-defined]
    expect(charts.first).to_be_visible()
    cluster = page.locator('#metrics-live svg[aria-label^="Requests per second, the cluster"]')  # type: ignore[attr-defined]
    expect(cluster).to_have_count(1)
    expect(page.locator('#metrics-totals tr[data-server="cluster"]')).to_be_visible()  # type: ignore[attr-defined]

    page.fill("#metrics-q", tag)  # type: ignore[attr-defined]
    page.click("#metrics-search button[type=submit]")  # type: ignore[attr-defined]
    card = page.locator(f'.metric-service[data-service="{service}"]')  # type: ignore[attr-defined]
    expect(card).to_contain_text("calls 6, errors 1")
    titles = card.locator("svg title")
    expect(titles).to_have_count(3)
    expect(titles.nth(0)).to_contain_text(f"Requests per second, service {service}, last hour by minute")
    for n in range(3):
        assert service in titles.nth(n).text_content()
    assert "latest" in titles.nth(1).text_content()
    page.set_viewport_size({"width": 1366, "height": 768})  # type: ignore[attr-defined]
    page.fill("#metrics-q", "")  # type: ignore[attr-defined]
    page.click("#metrics-search button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator(".metric-service").first).to_be_visible()  # type: ignore[attr-defined]
    shot(page, "metrics")

    card_link = f"/metrics/service?name={service}"
    page.goto(dash.url + card_link)  # type: ignore[attr-defined]
    expect(page.locator("h1")).to_contain_text(service)  # type: ignore[attr-defined]
    expect(page.locator("#service-metrics svg title").first).to_contain_text(service)  # type: ignore[attr-defined]
    expect(page.locator("#service-metrics")).to_contain_text("asked to fail")  # type: ignore[attr-defined]
    shot(page, "metrics-service")
    found = violations(page)
    assert not found, describe(found)


def test_the_service_fragment_for_other_screens(dash: Dashboard) -> None:
    with http(dash) as client:
        part = client.get("/metrics/service", params={"name": "no.such.service"}, headers={"HX-Request": "true"})
        assert part.status_code == 200
        assert "<html" not in part.text
        assert 'id="service-metrics"' in part.text
        assert "No calls of no.such.service" in part.text
