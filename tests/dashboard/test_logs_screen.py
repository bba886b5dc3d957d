"""The Logs screen: a line a service logs appears live, and filtering by its cid shows it."""

from __future__ import annotations

import html
import re
import time
import uuid

from playwright.sync_api import expect

from splice.dashboard.admin import ServerAnswer
from splice.dashboard.screens.logs import Filters, event, merged
from tests.dashboard.conftest import Dashboard, http, login, shot
from tests.dashboard.test_services_screen import deploy

SOURCE = """from splice.server import Service


class Chatty(Service):
    name = "{name}"

    def handle(self):
        self.logger.info("chatty says %s", self.request.payload)
        try:
            raise KeyError("for the traceback")
        except KeyError:
            self.logger.exception("and a traceback")
"""


def test_lines_of_every_server_merged_by_time() -> None:
    one = {"at": "2026-12-02 10:00:01,000", "level": "INFO", "message": "b", "cid": "-", "logger": "x"}
    two = {"at": "2026-12-02 10:00:00,500", "level": "ERROR", "message": "a\nTraceback", "cid": "c", "logger": "y"}
    answers = [
        ServerAnswer("server1", "u1", {"lines": [one], "cursor": "1:2"}),
        ServerAnswer("server2", "u2", {"lines": [two], "cursor": "3:4"}),
        ServerAnswer("server3", "u3", None, "down"),
    ]
    lines = merged(answers)
    assert [(line["server"], line["head"], line["rest"]) for line in lines] == [
        ("server2", "a", "Traceback"),
        ("server1", "b", ""),
    ]
    sent = event(lines)
    assert sent.startswith("event: lines\ndata: ")
    assert sent.endswith("\n\n")
    assert all(row.startswith("data: ") for row in sent.strip().splitlines()[1:])


def test_filters_from_the_query() -> None:
    filters = Filters.of({"level": "warning", "service": " a.b ", "server": "server2", "cid": "", "junk": "1"})
    assert filters.params() == {"level": "WARNING", "service": "a.b"}
    assert filters.query() == {"server": "server2", "level": "WARNING", "service": "a.b"}
    assert Filters.of({"level": "LOUD"}).level == ""


def test_a_logged_line_appears_live_and_its_cid_filters(dash: Dashboard, page: object) -> None:
    unique = f"log{uuid.uuid4().hex[:10]}"
    name = f"{unique}.chatty"
    deploy(dash, f"{unique}/chatty.py", SOURCE.format(name=name))
    login(page, dash, next_path="/logs")
    with page.expect_response(lambda r: "/logs/stream?" in r.url):  # type: ignore[attr-defined]
        page.goto(f"{dash.url}/logs?service={name}")  # type: ignore[attr-defined]
    page.evaluate("window.spliceNotReloaded = true")  # type: ignore[attr-defined]
    lines = page.locator("#log-lines .log-line")  # type: ignore[attr-defined]
    expect(lines).to_have_count(0)

    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/invoke", json={"service": name, "payload": f"hello {unique}"})
    assert answer.status_code == 200, answer.text
    cid = answer.json()["cid"]
    said = lines.filter(has_text=f"chatty says hello {unique}")
    expect(said).to_have_count(1, timeout=15_000)  # appended by the stream, no reload
    assert page.evaluate("window.spliceNotReloaded") is True  # type: ignore[attr-defined]
    expect(said).to_have_attribute("data-cid", cid)
    expect(said.locator("a.log-cid")).to_have_attribute("href", f"/logs?cid={cid}")
    expect(lines.filter(has_text="and a traceback").locator("pre")).to_contain_text("KeyError")
    shot(page, "logs")

    said.locator("a.log-cid").click()
    page.wait_for_url(f"{dash.url}/logs?cid={cid}")  # type: ignore[attr-defined]
    expect(lines.filter(has_text=f"chatty says hello {unique}")).to_have_count(1)
    assert set(lines.evaluate_all("ls => ls.map(l => l.dataset.cid)")) == {cid}


def test_the_stream_goes_on_where_the_page_ended(dash: Dashboard) -> None:
    unique = f"log{uuid.uuid4().hex[:10]}"
    name = f"{unique}.chatty"
    deploy(dash, f"{unique}/chatty.py", SOURCE.format(name=name))
    with http(dash, "viewer") as client:
        found = re.search(r'id="log-tail" sse-connect="([^"]+)"', client.get(f"/logs?service={name}&level=INFO").text)
        assert found, "no stream on the page"
        url = html.unescape(found.group(1))
        assert "cursor.server1=" in url, url
        assert "cursor.server2=" in url, url
        with client.stream("GET", url) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            with dash.cluster.admin() as admin:
                for server in dash.cluster.urls:  # one line on each server, maybe before the first poll
                    answer = admin.post(f"{server}/splice/admin/invoke", json={"service": name, "payload": unique})
                    assert answer.status_code == 200
            seen: set[str] = set()
            data: list[str] = []
            deadline = time.monotonic() + 30  # a heartbeat every 15 s lets the loop look at it
            for row in stream.iter_lines():
                if row.startswith("data: "):
                    data.append(row[len("data: ") :])
                elif not row and data:  # the end of an event: its lines' HTML
                    for line in re.findall(r'<div class="log-line.*?</div>', "\n".join(data), re.S):
                        if f"chatty says {unique}" in line:
                            seen.update(re.findall(r'data-server="(server\d)"', line))
                    data = []
                if seen == {"server1", "server2"} or time.monotonic() > deadline:
                    break
    assert seen == {"server1", "server2"}
