"""The Security screen: definitions made in the browser, their secrets never in a page; delete, refused while used."""

from __future__ import annotations

import uuid

from tests.dashboard.conftest import Dashboard, login, shot


def test_create_list_and_delete_without_the_secret_in_any_page(dash: Dashboard, page: object) -> None:
    suffix = uuid.uuid4().hex[:8]
    secret = f"s3cret-{uuid.uuid4().hex}"
    name = f"partners-{suffix}"
    login(page, dash, next_path="/security")
    assert page.get_attribute("#security-password", "type") == "password"  # type: ignore[attr-defined]
    page.fill("#security-name", name)  # type: ignore[attr-defined]
    page.fill("#security-username", f"acme-{suffix}")  # type: ignore[attr-defined]
    page.fill("#security-password", secret)  # type: ignore[attr-defined]
    page.click("#security-form button[type=submit]")  # type: ignore[attr-defined]
    page.locator("#security-result").get_by_text(f"Security definition {name} created").wait_for()  # type: ignore[attr-defined]
    row = page.locator(f'tr[data-security="{name}"]')  # type: ignore[attr-defined]
    row.wait_for()
    assert f"acme-{suffix}" in row.inner_text()
    assert secret not in page.content()  # type: ignore[attr-defined]
    assert page.input_value("#security-password") == ""  # type: ignore[attr-defined]

    # An API key: its header shown, its key not; a refusal (a bad header) does not send the key back either.
    page.select_option("#security-kind", "apikey")  # type: ignore[attr-defined]
    page.locator("#security-key").wait_for()  # type: ignore[attr-defined]
    page.fill("#security-name", f"robots-{suffix}")  # type: ignore[attr-defined]
    page.fill("#security-header", "Bad Header")  # type: ignore[attr-defined]
    page.fill("#security-key", secret)  # type: ignore[attr-defined]
    page.click("#security-form button[type=submit]")  # type: ignore[attr-defined]
    problem = page.locator("#security-header-problem")  # type: ignore[attr-defined]
    problem.wait_for()
    assert "is not a valid HTTP header name" in problem.inner_text()
    assert page.input_value("#security-key") == ""  # type: ignore[attr-defined]
    assert page.input_value("#security-name") == f"robots-{suffix}"  # type: ignore[attr-defined]
    assert secret not in page.content()  # type: ignore[attr-defined]
    page.fill("#security-header", "X-Robot-Key")  # type: ignore[attr-defined]
    page.fill("#security-key", secret)  # type: ignore[attr-defined]
    page.press("#security-key", "Enter")  # type: ignore[attr-defined]
    page.locator(f'tr[data-security="robots-{suffix}"]').wait_for()  # type: ignore[attr-defined]
    assert "X-Robot-Key" in page.locator(f'tr[data-security="robots-{suffix}"]').inner_text()  # type: ignore[attr-defined]
    page.reload()  # type: ignore[attr-defined]
    assert secret not in page.content()  # type: ignore[attr-defined]
    shot(page, "security")

    # A definition a channel uses: the admin API's 409 says so; once the channel is gone, it deletes.
    with dash.cluster.admin() as admin:
        made = admin.post(
            "/splice/admin/channels",
            json={"name": f"guarded-{suffix}", "path": f"/guarded-{suffix}", "service": "x.y", "security": name},
        )
        assert made.status_code == 201, made.text
    page.reload()  # type: ignore[attr-defined]
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click(f'tr[data-security="{name}"] button:has-text("Delete")')  # type: ignore[attr-defined]
    result = page.locator("#security-result")  # type: ignore[attr-defined]
    result.get_by_text("Refused (409)").wait_for()
    assert f"guarded-{suffix}" in result.inner_text()
    with dash.cluster.admin() as admin:
        assert admin.delete(f"/splice/admin/channels/guarded-{suffix}").status_code == 200
    page.once("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]
    page.click(f'tr[data-security="{name}"] button:has-text("Delete")')  # type: ignore[attr-defined]
    result.get_by_text(f"Security definition {name} deleted").wait_for()
    page.locator(f'tr[data-security="{name}"]').wait_for(state="detached")  # type: ignore[attr-defined]
