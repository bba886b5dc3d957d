"""The Services screen: a deployed service shows up live and is found; its page shows its source and invokes it."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import expect

from splice.dashboard.screens.services import matching, parse_payload, running_on
from tests.dashboard.conftest import Dashboard, http, login, shot

SOURCE = '''"""A service of the dashboard's tests."""
from splice.server import Service


class Echo(Service):
    name = "{name}"

    def handle(self):
        self.response.payload = {{"echo": self.request.payload}}
'''


def deploy(dash: Dashboard, path: str, source: str) -> None:
    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": path, "source": source}]})
    assert answer.status_code == 200, answer.text


def calls(dash: Dashboard, name: str) -> int:
    """How many calls of ``name`` the servers counted, all together."""
    total = 0
    with dash.cluster.admin() as admin:
        for url in dash.cluster.urls:
            answer = admin.get(f"{url}/splice/admin/metrics", params={"service": name}).json()
            total += sum(s["calls"] for s in answer["services"] if s["name"] == name)
    return total


def test_payloads_parsed_or_placed() -> None:
    assert parse_payload(' {"a": [1, 2]} ') == ({"a": [1, 2]}, None)
    assert parse_payload("  ") == (None, None)
    assert parse_payload('{\n  "a": 1,\n  "b": \n}') == (None, "payload: line 4, column 1: Expecting value")


def test_search_and_servers_running() -> None:
    services = [
        {"name": "shop.b", "module": "shop.orders", "path": "shop/orders.py"},
        {"name": "shop.a", "module": "shop.ping", "path": "shop/ping.py"},
        {"name": "crm.x", "module": "crm.people", "path": "crm/people.py"},
    ]
    assert [s["name"] for s in matching(services, "")] == ["crm.x", "shop.a", "shop.b"]
    assert [s["name"] for s in matching(services, "ORDERS")] == ["shop.b"]
    assert [s["name"] for s in matching(services, "crm")] == ["crm.x"]
    cluster = {
        "servers": [
            {"name": "s1", "live": True, "last_sequence": 7},
            {"name": "s2", "live": True, "last_sequence": 5},
            {"name": "s3", "live": False, "last_sequence": 7},
        ]
    }
    assert running_on(cluster, 6) == (1, 2)
    assert running_on(cluster, 5) == (2, 2)


def test_a_service_appears_live_is_found_shows_its_source_and_is_invoked(dash: Dashboard, page: object) -> None:
    unique = f"svc{uuid.uuid4().hex[:10]}"
    name, path = f"{unique}.echo", f"{unique}/echo.py"
    login(page, dash, next_path="/services")
    with page.expect_response(lambda r: r.url.endswith("/events")):  # type: ignore[attr-defined]
        page.reload()  # type: ignore[attr-defined]
    page.evaluate("window.spliceNotReloaded = true")  # type: ignore[attr-defined]
    deploy(dash, path, SOURCE.format(name=name))
    row = page.locator(f'#services tr[data-service="{name}"]')  # type: ignore[attr-defined]
    expect(row).to_be_visible(timeout=15_000)  # the hub's "changed" event refreshed the table
    assert page.evaluate("window.spliceNotReloaded") is True  # type: ignore[attr-defined]
    expect(row).to_contain_text(path)
    expect(row).to_contain_text("v1")
    shot(page, "services")

    page.fill("#q", unique[3:])  # type: ignore[attr-defined]
    expect(page.locator("#services tbody tr")).to_have_count(1)  # type: ignore[attr-defined]
    expect(row).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(f"/services?q={unique[3:]}") + "$"))  # a reload shows the same

    row.get_by_role("link", name=name).click()
    page.wait_for_url(re.compile(re.escape(f"/services/{name}") + "$"))  # type: ignore[attr-defined]
    source = page.locator("pre#source")  # type: ignore[attr-defined]
    expect(source).to_contain_text("class Echo(Service):")
    numbers = source.locator(".ln").all_inner_texts()
    assert numbers == [str(n) for n in range(1, len(SOURCE.splitlines()) + 1)]

    before = calls(dash, name)
    page.fill("#payload", '{"word": "hello"}')  # type: ignore[attr-defined]
    page.select_option("#invoke-server", "server2")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Invoke").click()  # type: ignore[attr-defined]
    result = page.locator("#invoke-result")  # type: ignore[attr-defined]
    expect(result).to_contain_text("status 200")
    expect(result.locator("pre")).to_contain_text('"word": "hello"')
    cid = result.locator('a[href^="/logs?cid="]')
    expect(cid).to_have_text(re.compile(r"^[0-9a-f]{24}$"))
    expect(result).to_contain_text("server2")
    expect(result).to_contain_text(" ms")
    assert calls(dash, name) == before + 1
    shot(page, "service")

    page.fill("#payload", '{\n  "word": "hello",\n}')  # type: ignore[attr-defined]
    page.get_by_role("button", name="Invoke").click()  # type: ignore[attr-defined]
    expect(result).to_contain_text("Not sent")
    expect(result).to_contain_text("payload: line 3, column 1")
    assert calls(dash, name) == before + 1  # nothing reached a server


def test_a_failing_service_shows_its_status_and_cid(dash: Dashboard) -> None:
    unique = f"svc{uuid.uuid4().hex[:10]}"
    source = f"from splice.server import Service\n\n\nclass Boom(Service):\n    name = '{unique}.boom'\n\n"
    deploy(dash, f"{unique}/boom.py", source + "    def handle(self):\n        raise ValueError('no luck')\n")
    with http(dash) as client:
        answer = client.post("/services/-/invoke", data={"service": f"{unique}.boom", "payload": "{}", "server": ""})
    assert answer.status_code == 200
    assert "status 500" in answer.text
    assert "ValueError: no luck" in answer.text
    assert re.search(r'href="/logs\?cid=[0-9a-f]{24}"', answer.text)


def test_viewers_see_the_form_disabled_and_cannot_invoke(dash: Dashboard) -> None:
    unique = f"svc{uuid.uuid4().hex[:10]}"
    deploy(dash, f"{unique}/echo.py", SOURCE.format(name=f"{unique}.echo"))
    with http(dash, "viewer") as client:
        shown = client.get(f"/services/{unique}.echo")
        refused = client.post("/services/-/invoke", data={"service": f"{unique}.echo", "payload": "{}"})
    assert shown.status_code == 200
    assert re.search(r'<button type="submit" disabled>Invoke</button>', shown.text)
    assert "Viewers cannot change anything" in shown.text
    assert refused.status_code == 403


def test_an_unknown_service_says_so(dash: Dashboard) -> None:
    with http(dash) as client:
        answer = client.get("/services/no.such.service")
    assert answer.status_code == 404
    assert "no.such.service" in answer.text
