"""The Jobs screen, in a real browser against a real cluster and its scheduler: create a job, run it now (the
service records the run in a file), pause and resume it, a refused job naming its field, the job's page with
its runs and an edit, delete."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.conftest import eventually
from tests.dashboard.conftest import Dashboard, http, login, shot

RECORDER = """from splice.server import Service


class Record(Service):
    name = {name!r}

    def handle(self):
        with open(self.request.payload["file"], "a") as out:
            out.write("run\\n")
"""


def _deploy_recorder(dash: Dashboard, tag: str) -> str:
    service = f"jobs{tag}.record"
    body = {"modules": [{"path": f"jobs{tag}/record.py", "source": RECORDER.format(name=service)}]}
    with dash.cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json=body)
    assert answer.status_code == 200, answer.text
    return service


def test_create_run_pause_resume_edit_delete(dash: Dashboard, page: object, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    service, job = _deploy_recorder(dash, tag), f"job-{tag}"
    record = tmp_path / "runs.txt"
    login(page, dash, next_path="/jobs")
    page.on("dialog", lambda dialog: dialog.accept())  # type: ignore[attr-defined]

    page.fill("#job-name", job)  # type: ignore[attr-defined]
    page.fill("#job-service", service)  # type: ignore[attr-defined]
    page.select_option("#job-kind", "interval")  # type: ignore[attr-defined]
    page.fill("#job-every", "1")  # type: ignore[attr-defined]
    page.select_option("#job-unit", "hours")  # type: ignore[attr-defined]
    page.fill("#job-payload", json.dumps({"file": str(record)}))  # type: ignore[attr-defined]
    page.click("#job-form button:text('Create job')")  # type: ignore[attr-defined]
    page.locator("#job-create-result").filter(has_text=f"Created job {job}").wait_for()  # type: ignore[attr-defined]
    row = page.locator(f"#jobs tr[data-job='{job}']")  # type: ignore[attr-defined]
    row.wait_for()
    assert "every 1 h" in row.inner_text() or "hour" in row.inner_text()

    row.locator("button:text('Run now')").click()
    page.locator("#job-result").filter(has_text="Run now requested").wait_for()  # type: ignore[attr-defined]
    assert eventually(lambda: record.exists() and "run" in record.read_text())
    row.filter(has_text="ok").wait_for()  # the last run, refreshed on the next tick

    row.locator("button:text('Pause')").click()
    row.filter(has_text="paused").locator("button:text('Resume')").wait_for()
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/jobs/{job}").json()["paused"] is True
    row.locator("button:text('Resume')").click()
    row.locator("button:text('Pause')").wait_for()
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/jobs/{job}").json()["paused"] is False
    shot(page, "jobs")

    page.goto(f"{dash.url}/jobs/{job}")  # type: ignore[attr-defined]
    runs = page.locator("#runs")  # type: ignore[attr-defined]
    runs.locator("tbody tr").filter(has_text="ok").first.wait_for()
    assert "manual" in runs.inner_text()
    page.fill("#job-every", "2")  # type: ignore[attr-defined]
    page.click("#job-edit button:text('Save changes')")  # type: ignore[attr-defined]
    page.locator("#job-result").filter(has_text="Changed interval").wait_for()  # type: ignore[attr-defined]
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/jobs/{job}").json()["trigger"]["hours"] == 2
    shot(page, "job")

    page.click("#runs-live button:text('Delete')")  # type: ignore[attr-defined]
    page.wait_for_url(f"{dash.url}/jobs")  # type: ignore[attr-defined]
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/jobs/{job}").status_code == 404


def test_a_refused_job_names_its_field(dash: Dashboard, page: object) -> None:
    job = f"bad-cron-{uuid.uuid4().hex[:8]}"
    login(page, dash, next_path="/jobs")
    page.fill("#job-name", job)  # type: ignore[attr-defined]
    page.fill("#job-service", "any.service")  # type: ignore[attr-defined]
    page.select_option("#job-kind", "cron")  # type: ignore[attr-defined]
    assert page.locator("#job-every").is_hidden()  # type: ignore[attr-defined]  # only the kind's fields show
    page.fill("#job-cron", "61 * * * *")  # type: ignore[attr-defined]
    page.click("#job-form button:text('Create job')")  # type: ignore[attr-defined]
    alert = page.locator("#job-create-result .alert")  # type: ignore[attr-defined]
    alert.wait_for()
    assert "cron.minute" in alert.inner_text()
    assert "61 is out of range 0-59" in alert.inner_text()
    assert page.locator(f"#jobs tr[data-job='{job}']").count() == 0  # type: ignore[attr-defined]


def test_a_payload_that_is_not_json_is_not_sent(dash: Dashboard) -> None:
    job = f"bad-json-{uuid.uuid4().hex[:8]}"
    form = {"name": job, "service": "any.service", "kind": "interval", "every": "5", "unit": "minutes"}
    with http(dash) as client:
        answer = client.post("/jobs/-/create", data={**form, "payload": '{"a": 1'})
        assert answer.status_code == 400
        assert "payload: not JSON: line 1, column 8" in answer.text
    with http(dash, "viewer") as client:
        assert "viewers cannot change anything" in client.get("/jobs").text
        assert client.post("/jobs/-/create", data=form).status_code == 403
    with dash.cluster.admin() as admin:
        assert admin.get(f"/splice/admin/jobs/{job}").status_code == 404
