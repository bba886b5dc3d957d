"""The Pub/sub screen against a real cluster in a real browser: topics and subscriptions made from the browser, a
message published from it and seen waiting (live) and peeked, dead letters replayed from it."""

from __future__ import annotations

import secrets

from playwright.sync_api import expect

from tests.conftest import eventually
from tests.dashboard.axe import describe, violations
from tests.dashboard.conftest import Dashboard, http, login, shot

LIVE = 20_000
"""ms for what refreshes on the hub's tick (every 5 s)."""
expect.set_options(timeout=15_000)  # a change waits for every server to reload: seconds on a busy 2-core machine


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def test_topic_pull_subscription_publish_and_peek_from_the_browser(dash: Dashboard, page: object) -> None:
    topic, sub = unique("dash.topic"), unique("dash-pull-")
    login(page, dash, next_path="/topics")
    page.fill("#topic-name", topic)  # type: ignore[attr-defined]
    page.click("#topic-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#topic-result")).to_contain_text(f"Topic {topic} created")  # type: ignore[attr-defined]
    expect(page.locator(f'#topics tr[data-topic="{topic}"]')).to_be_visible()  # type: ignore[attr-defined]

    page.fill("#subscription-name", sub)  # type: ignore[attr-defined]
    page.fill("#subscription-topic", topic)  # type: ignore[attr-defined]
    page.click("#subscription-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#subscription-result")).to_contain_text("created")  # type: ignore[attr-defined]
    row = page.locator(f'#subscriptions tr[data-subscription="{sub}"]')  # type: ignore[attr-defined]
    expect(row).to_contain_text("pull")
    expect(row.locator("td.ready")).to_have_text("0", timeout=LIVE)

    page.fill("#publish-topic", topic)  # type: ignore[attr-defined]
    page.fill("#publish-payload", '{"order": 7,\n "note": oops}')  # type: ignore[attr-defined]
    page.click("#publish-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#publish-result")).to_contain_text("line 2, column 10")  # type: ignore[attr-defined]
    page.fill("#publish-payload", '{"order": 7, "note": "from the dashboard"}')  # type: ignore[attr-defined]
    page.click("#publish-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#publish-result")).to_contain_text("Published message")  # type: ignore[attr-defined]
    expect(row.locator("td.ready")).to_have_text("1", timeout=LIVE)
    expect(page.locator(f'#topics tr[data-topic="{topic}"] td.depth')).to_have_text("1", timeout=LIVE)  # type: ignore[attr-defined]
    shot(page, "topics")

    row.locator("a", has_text=sub).click()
    expect(page.locator("h1")).to_contain_text(sub)  # type: ignore[attr-defined]
    expect(page.locator("#messages")).to_contain_text("from the dashboard")  # type: ignore[attr-defined]
    expect(page.locator("#queue-figures td.ready")).to_have_text("1")  # type: ignore[attr-defined]
    shot(page, "subscription")
    found = violations(page)
    assert not found, describe(found)


def test_refusals_are_shown_field_by_field_and_edits_and_deletes_work(dash: Dashboard, page: object) -> None:
    topic = unique("dash.edit")
    login(page, dash, next_path="/topics")
    page.fill("#topic-name", topic)  # type: ignore[attr-defined]
    page.fill("#topic-max-payload", "lots")  # type: ignore[attr-defined]
    page.click("#topic-form button[type=submit]")  # type: ignore[attr-defined]
    result = page.locator("#topic-result")  # type: ignore[attr-defined]
    expect(result).to_contain_text("Refused (400)")
    expect(result.locator("code", has_text="max_payload")).to_be_visible()

    page.fill("#topic-max-payload", "2048")  # type: ignore[attr-defined]
    page.click("#topic-form button[type=submit]")  # type: ignore[attr-defined]
    expect(result).to_contain_text("created")
    row = page.locator(f'#topics tr[data-topic="{topic}"]')  # type: ignore[attr-defined]
    expect(row).to_contain_text("2048 B")
    row.get_by_role("button", name="Edit").click()
    expect(page.locator("#topic-form h2")).to_contain_text(f"Change topic {topic}")  # type: ignore[attr-defined]
    page.fill("#topic-max-depth", "50")  # type: ignore[attr-defined]
    page.click("#topic-form button[type=submit]")  # type: ignore[attr-defined]
    expect(page.locator("#topic-result")).to_contain_text("saved")  # type: ignore[attr-defined]
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/topics/{topic}").json()["max_depth"] == 50

    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    row.get_by_role("button", name="Delete").click()
    page.wait_for_timeout(3000)
    shot(page, "debug")
    print(page.url)
    print(page.content()[:3000])
    expect(page.locator("#pubsub-result")).to_contain_text(f"Topic {topic} deleted")  # type: ignore[attr-defined]
    expect(row).to_have_count(0)


FLAKY = '''
from splice.server import Service


class Flaky(Service):
    """Fails until the cache holds FIXED, then records what it was given."""

    name = "SERVICE"

    def handle(self) -> None:
        if self.cache["default"].get("FIXED") is None:
            raise ValueError("not fixed yet")
        self.cache["default"].set("DONE", self.request.payload)
'''


def test_dead_letters_after_the_delivery_limit_and_replay_from_the_browser(dash: Dashboard, page: object) -> None:
    tag = secrets.token_hex(3)
    service, topic, sub = f"dash.flaky{tag}", f"dash.flaky{tag}", f"dash-push-{tag}"
    fixed, done = f"fixed-{tag}", f"done-{tag}"
    source = FLAKY.replace("SERVICE", service).replace("FIXED", fixed).replace("DONE", done)
    with dash.cluster.admin() as admin:
        deployed = admin.post(
            "/splice/admin/deploy", json={"modules": [{"path": f"dash_flaky_{tag}.py", "source": source}]}
        )
        assert deployed.status_code == 200, deployed.text
        assert admin.post("/splice/admin/topics", json={"name": topic}).status_code == 201
        body = {
            "name": sub,
            "topic": topic,
            "service": service,
            "delivery_limit": 2,
            "backoff": 0.1,
            "max_backoff": 0.2,
        }
        assert admin.post("/splice/admin/subscriptions", json=body).status_code == 201, body
        published = admin.post(f"/splice/admin/topics/{topic}/publish", json={"data": {"order": tag}})
        assert published.status_code == 200, published.text

        def dead() -> bool:
            return admin.get(f"/splice/admin/subscriptions/{sub}").json()["dead"] == 1

        eventually(dead, 30)
        login(page, dash, next_path=f"/topics/subscription?name={sub}")
        dead_row = page.locator("#dead tbody tr[data-delivery]")  # type: ignore[attr-defined]
        expect(dead_row).to_have_count(1)
        expect(dead_row).to_contain_text("not fixed yet")
        expect(page.locator("#queue-figures td.dead")).to_have_text("1")  # type: ignore[attr-defined]

        assert admin.put(f"/splice/admin/caches/default/entries/{fixed}", json={"value": True}).status_code == 200
        page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
        dead_row.get_by_role("button", name="Replay").click()
        expect(page.locator("#queue-result")).to_contain_text("1 message replayed")  # type: ignore[attr-defined]
        expect(page.locator("#dead tbody tr[data-delivery]")).to_have_count(0, timeout=LIVE)  # type: ignore[attr-defined]
        expect(page.locator("#queue-figures td.dead")).to_have_text("0", timeout=LIVE)  # type: ignore[attr-defined]
        eventually(lambda: admin.get(f"/splice/admin/caches/default/entries/{done}").json()["value"] == {"order": tag})


def test_a_viewer_sees_but_cannot_change(dash: Dashboard) -> None:
    with http(dash, "viewer") as client:
        html = client.get("/topics").text
        assert "viewers cannot change anything" in html
        assert client.post("/topics/topics", data={"name": unique("dash.viewer")}).status_code == 403
