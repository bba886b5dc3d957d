"""The Channels screen: a REST channel made in the browser answers through the cluster; refusals name the field."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.conftest import eventually
from tests.dashboard.conftest import Dashboard, http, login, shot

SOURCE = """
from splice.server import Service


class Hello(Service):
    name = "{name}"

    def handle(self) -> None:
        self.response.payload = {{"hello": "{name}"}}
"""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def deploy_service(dash: Dashboard, module: str) -> str:
    name = f"{module}.hello"
    body = {"modules": [{"path": f"{module}.py", "source": SOURCE.format(name=name)}]}
    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json=body)
    assert answer.status_code == 200, answer.text
    return name


def test_a_rest_channel_made_in_the_browser_answers_through_the_cluster(dash: Dashboard, page: object) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = deploy_service(dash, f"chan{suffix}")
    channel = f"hello-{suffix}"
    login(page, dash, next_path="/channels")
    page.fill("#channel-name", channel)  # type: ignore[attr-defined]
    page.fill("#channel-path", f"/hello-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-service", service)  # type: ignore[attr-defined]
    page.fill("#channel-methods", "GET, POST")  # type: ignore[attr-defined]
    page.click("#channel-form button[type=submit]")  # type: ignore[attr-defined]
    result = page.locator("#channel-result")  # type: ignore[attr-defined]
    result.get_by_text(f"Channel {channel} created").wait_for()
    curl = page.locator("#channel-curl").inner_text()  # type: ignore[attr-defined]
    assert f"/hello-{suffix}" in curl
    assert curl.startswith("curl -i http")  # GET, the first of its methods
    url = re.search(r"(http://\S+)", curl)
    assert url, curl
    # The curl line, as httpx: it answers through the cluster (load balancer or first server) on every server.
    assert url.group(1) == (dash.cluster.load_balancer or dash.cluster.url) + f"/hello-{suffix}"

    def answers() -> bool:
        for base in (url.group(1), *(u + f"/hello-{suffix}" for u in dash.cluster.urls)):
            got = httpx.get(base, timeout=10)
            if got.status_code != 200 or got.json() != {"hello": service}:
                return False
        return True

    eventually(answers)
    row = page.locator(f'tr[data-channel="{channel}"]')  # type: ignore[attr-defined]
    row.wait_for()
    assert "GET, POST" in row.inner_text()
    assert service in row.inner_text()
    shot(page, "channels")

    # Its page shows the definition read-only, as a splice.toml table.
    page.click(f'tr[data-channel="{channel}"] a')  # type: ignore[attr-defined]
    toml = page.locator("#channel-toml").inner_text()  # type: ignore[attr-defined]
    assert "[[channels]]" in toml
    assert f'path = "/hello-{suffix}"' in toml
    assert 'methods = ["GET", "POST"]' in toml
    assert "cannot change a channel in place" in page.content()  # type: ignore[attr-defined]

    # Delete (confirmed): the row goes, the path stops answering.
    page.goto(f"{dash.url}/channels")  # type: ignore[attr-defined]
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click(f'tr[data-channel="{channel}"] button:has-text("Delete")')  # type: ignore[attr-defined]
    page.locator("#channel-result").get_by_text(f"Channel {channel} deleted").wait_for()  # type: ignore[attr-defined]
    page.locator(f'tr[data-channel="{channel}"]').wait_for(state="detached")  # type: ignore[attr-defined]
    eventually(lambda: httpx.get(dash.cluster.url + f"/hello-{suffix}", timeout=10).status_code == 404)


def test_refusals_show_the_admin_api_message_and_field(dash: Dashboard, page: object) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = deploy_service(dash, f"ref{suffix}")
    login(page, dash, next_path="/channels")
    # A bad path: the admin API's message, under the field.
    page.fill("#channel-name", f"bad-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-path", "no-slash")  # type: ignore[attr-defined]
    page.fill("#channel-service", service)  # type: ignore[attr-defined]
    page.press("#channel-service", "Enter")  # type: ignore[attr-defined]
    problem = page.locator("#channel-path-problem")  # type: ignore[attr-defined]
    problem.wait_for()
    assert problem.inner_text().startswith("path ")
    assert "Refused (400)" in page.locator("#channel-result").inner_text()  # type: ignore[attr-defined]
    assert page.get_attribute("#channel-path", "aria-invalid") == "true"  # type: ignore[attr-defined]
    assert page.input_value("#channel-name") == f"bad-{suffix}"  # type: ignore[attr-defined]
    with dash.cluster.admin() as admin:
        direct = admin.post("/splice/admin/channels", json={"name": "x", "path": "no-slash", "service": service})
    assert direct.json()["error"]["problems"][0]["message"] in problem.inner_text()

    # A duplicate name: 409 with the admin API's message.
    taken = f"taken-{suffix}"
    with dash.cluster.admin() as admin:
        made = admin.post("/splice/admin/channels", json={"name": taken, "path": f"/t-{suffix}", "service": service})
        assert made.status_code == 201, made.text
    page.fill("#channel-name", taken)  # type: ignore[attr-defined]
    page.fill("#channel-path", f"/t2-{suffix}")  # type: ignore[attr-defined]
    page.click("#channel-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#channel-result").get_by_text("Refused (409)").wait_for()  # type: ignore[attr-defined]
    assert taken in page.locator("#channel-result").inner_text()  # type: ignore[attr-defined]

    # An unknown service is no refusal: the channel is made, and the admin API's warning says so.
    page.fill("#channel-name", f"early-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-path", f"/early-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-service", f"nothing{suffix}.yet")  # type: ignore[attr-defined]
    page.click("#channel-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#channel-result").get_by_text(f"no service named 'nothing{suffix}.yet'").wait_for()  # type: ignore[attr-defined]

    # An unknown security definition: refused, the admin API's message shown.
    page.fill("#channel-name", f"sec-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-path", f"/sec-{suffix}")  # type: ignore[attr-defined]
    page.fill("#channel-service", service)  # type: ignore[attr-defined]
    page.fill("#channel-security", f"nobody-{suffix}")  # type: ignore[attr-defined]
    page.click("#channel-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#channel-result").get_by_text(re.compile("Refused")).wait_for()  # type: ignore[attr-defined]
    assert f"nobody-{suffix}" in page.locator("#channel-result").inner_text()  # type: ignore[attr-defined]
    shot(page, "channels-refused")


def test_the_kind_select_switches_the_fields(dash: Dashboard, page: object) -> None:
    login(page, dash, next_path="/channels")
    page.fill("#channel-service", "kept.service")  # type: ignore[attr-defined]
    page.select_option("#channel-kind", "file")  # type: ignore[attr-defined]
    page.locator("#channel-directory").wait_for()  # type: ignore[attr-defined]
    assert page.locator("#channel-path").count() == 0  # type: ignore[attr-defined]
    assert page.input_value("#channel-service") == "kept.service"  # type: ignore[attr-defined]
    page.select_option("#channel-kind", "amqp")  # type: ignore[attr-defined]
    page.locator("#channel-queue").wait_for()  # type: ignore[attr-defined]
    assert page.locator("#channel-declare option").count() == 3  # type: ignore[attr-defined]


def test_a_viewer_sees_disabled_forms_and_is_refused(dash: Dashboard, page: object) -> None:
    login(page, dash, "viewer", next_path="/channels")
    assert page.locator("#channel-form button[type=submit]").is_disabled()  # type: ignore[attr-defined]
    assert "viewers cannot change anything" in page.content()  # type: ignore[attr-defined]
    with http(dash, "viewer") as client:
        refused = client.post("/channels", data={"name": unique("v"), "path": "/v", "service": "x"})
    assert refused.status_code == 403
