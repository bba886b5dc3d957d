"""Declared jobs (``[[jobs]]`` in ``splice.toml``) applied on one in-process server, every ODB.

A file's jobs are created, then left alone when it is applied again (an interval job without ``start``
included), updated in place when a field changes, never touched by a dry run, and deleted only with prune,
which spares jobs a service made at run time. Jobs alone record no configuration change.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from splice.server.runtime import Runtime
from tests.conftest import InProcess

TOOLS = textwrap.dedent(
    """
    from splice.server import Service


    class Tick(Service):
        name = "tools.tick"

        def handle(self):
            self.response.payload = "tick"


    class Plan(Service):
        name = "tools.plan"

        async def handle(self):
            await self.schedule.acreate("cleanup-7", "tools.tick", in_=1800)
            self.response.payload = "planned"
    """
)

JOBS = textwrap.dedent(
    """\
    [[jobs]]
    name = "nightly"
    service = "tools.tick"
    cron = "0 2 * * *"
    timezone = "Europe/Berlin"
    payload = { kind = "full", days = [1, 2] }

    [[jobs]]
    name = "every-5"
    service = "tools.tick"
    interval = { minutes = 5 }
    retries = 2
    """
)

CHANNEL = textwrap.dedent(
    """\
    [[channels]]
    name = "tick"
    path = "/tick"
    service = "tools.tick"
    """
)


def runtime_of(server: InProcess) -> Runtime:
    assert isinstance(server.runtime, Runtime)
    return server.runtime


async def deploy_tools(server: InProcess) -> None:
    answer = await server.admin.post("/splice/admin/deploy", json={"modules": [{"path": "tools.py", "source": TOOLS}]})
    assert answer.status_code == 200, answer.text


async def apply(server: InProcess, text: str, status: int = 200, **extra: Any) -> dict[str, Any]:
    answer = await server.admin.post("/splice/admin/apply", json={"file": "splice.toml", "text": text, **extra})
    assert answer.status_code == status, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def jobs(server: InProcess) -> dict[str, dict[str, Any]]:
    answer = await server.admin.get("/splice/admin/jobs")
    assert answer.status_code == 200, answer.text
    return {job["name"]: job for job in answer.json()["jobs"]}


def changes(answer: dict[str, Any]) -> list[tuple[str, str, str, list[str]]]:
    return [(c["action"], c["kind"], c["name"], c["fields"]) for c in answer["changes"] if c["action"] != "unchanged"]


async def test_jobs_are_created_then_left_alone_by_the_same_file(server: InProcess) -> None:
    await deploy_tools(server)
    runtime = runtime_of(server)
    sequence = await runtime.repository.last_sequence()

    first = await apply(server, JOBS)
    assert (first["status"], first["changed"], first["warnings"]) == ("applied", True, [])
    assert changes(first) == [("create", "job", "nightly", []), ("create", "job", "every-5", [])]
    assert first["servers"] == []  # jobs alone: no server reloads, the scheduler watches the jobs
    assert await runtime.repository.last_sequence() == sequence
    stored = await jobs(server)
    nightly = stored["nightly"]
    assert (nightly["service"], nightly["payload"], nightly["origin"]) == (
        "tools.tick",
        {"kind": "full", "days": [1, 2]},
        "declared:splice.toml",
    )
    assert nightly["trigger"] == {"kind": "cron", "expression": "0 2 * * *", "timezone": "Europe/Berlin"}
    assert (stored["every-5"]["retries"], stored["every-5"]["schedule"].startswith("every 5 min from")) == (2, True)

    second = await apply(server, JOBS)
    assert (second["status"], second["changed"], second["servers"]) == ("unchanged", False, [])
    assert second["counts"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 2}
    assert await jobs(server) == stored  # not rewritten: the interval's start (and next run) did not move


async def test_a_changed_job_is_updated_in_place(server: InProcess) -> None:
    await deploy_tools(server)
    await apply(server, JOBS)
    before = await jobs(server)

    edited = JOBS.replace('cron = "0 2 * * *"', 'cron = "30 3 * * *"').replace("retries = 2\n", "paused = true\n")
    answer = await apply(server, edited)
    assert answer["status"] == "applied"
    assert changes(answer) == [
        ("update", "job", "nightly", ["cron"]),
        ("update", "job", "every-5", ["retries", "paused"]),
    ]
    after = await jobs(server)
    assert after["nightly"]["id"] == before["nightly"]["id"]
    assert after["nightly"]["trigger"]["expression"] == "30 3 * * *"
    assert (after["every-5"]["retries"], after["every-5"]["paused"], after["every-5"]["next_run"]) == (0, True, None)
    assert (await apply(server, edited))["status"] == "unchanged"


async def test_dry_run_changes_nothing_and_prune_spares_jobs_services_made(server: InProcess) -> None:
    await deploy_tools(server)
    by_hand = {"name": "by-hand", "service": "tools.tick", "interval": 60}
    assert (await server.admin.post("/splice/admin/jobs", json=by_hand)).status_code == 201
    planned = await server.admin.post("/splice/admin/invoke", json={"service": "tools.plan"})
    assert planned.status_code == 200, planned.text
    before = await jobs(server)
    assert (before["by-hand"]["origin"], before["cleanup-7"]["origin"]) == ("admin-api", "service:tools.plan")

    dry = await apply(server, JOBS, prune=True, dry_run=True)
    assert (dry["status"], dry["changed"]) == ("dry_run", True)
    assert changes(dry) == [
        ("create", "job", "nightly", []),
        ("create", "job", "every-5", []),
        ("delete", "job", "by-hand", []),
    ]
    assert await jobs(server) == before

    kept = await apply(server, JOBS)
    assert not any(action == "delete" for action, *_ in changes(kept))
    assert set(await jobs(server)) == {"by-hand", "cleanup-7", "nightly", "every-5"}

    pruned = await apply(server, JOBS, prune=True)
    assert changes(pruned) == [("delete", "job", "by-hand", [])]
    assert set(await jobs(server)) == {"cleanup-7", "nightly", "every-5"}

    emptied = await apply(server, "", prune=True)
    assert changes(emptied) == [("delete", "job", "every-5", []), ("delete", "job", "nightly", [])]
    assert set(await jobs(server)) == {"cleanup-7"}


async def test_a_wrong_job_is_refused_with_file_line_and_field(server: InProcess) -> None:
    broken = await apply(server, JOBS.replace('timezone = "Europe/Berlin"', 'timezone = "Europe/Nowhere"'), status=422)
    assert broken["error"]["code"] == "invalid_declaration"
    (problem,) = broken["error"]["problems"]
    assert (problem["file"], problem["line"], problem["field"]) == ("splice.toml", 5, "jobs[0].timezone")
    assert broken["error"]["message"].startswith("splice.toml:5: jobs[0].timezone: unknown timezone 'Europe/Nowhere'")
    assert await jobs(server) == {}


async def test_channels_and_jobs_apply_together(server: InProcess) -> None:
    runtime = runtime_of(server)
    sequence = await runtime.repository.last_sequence()
    answer = await apply(server, CHANNEL + "\n" + JOBS)
    assert changes(answer) == [
        ("create", "channel", "tick", []),
        ("create", "job", "nightly", []),
        ("create", "job", "every-5", []),
    ]
    assert [s["status"] for s in answer["servers"]] == ["deployed"]
    assert await runtime.repository.last_sequence() == sequence + 1
    assert answer["warnings"] == [
        "channel tick: no service named 'tools.tick' is deployed yet",
        "job nightly: no service named 'tools.tick' is deployed yet",
        "job every-5: no service named 'tools.tick' is deployed yet",
    ]
    assert set(await jobs(server)) == {"nightly", "every-5"}


async def test_a_pickup_file_declares_jobs_with_its_path_as_origin(server: InProcess, tmp_path: Path) -> None:
    runtime = runtime_of(server)
    file = tmp_path / "pickup" / "tools.splice.toml"
    file.parent.mkdir()
    file.write_text(JOBS, encoding="utf-8")
    assert (await runtime.apply_config(file))["changed"] is True
    assert {job["origin"] for job in (await jobs(server)).values()} == {f"declared:{file}"}
    assert (await runtime.apply_config(file))["changed"] is False


async def test_a_server_without_a_job_store_refuses_declared_jobs(server: InProcess) -> None:
    runtime = runtime_of(server)
    runtime.jobs = None
    refused = await apply(server, CHANNEL + "\n" + JOBS, status=422)
    (problem,) = refused["error"]["problems"]
    assert (problem["line"], problem["field"]) == (7, "jobs[0].name")
    assert "keeps no jobs" in problem["message"]
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []
    assert (await apply(server, CHANNEL))["status"] == "applied"
