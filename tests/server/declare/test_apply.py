"""Declared jobs (``[[jobs]]`` in ``splice.toml``) applied on one in-process server, every ODB.

A file's jobs are created, then left alone when it is applied again (an interval job without ``start``
included), updated in place when a field changes, never touched by a dry run, and deleted only with prune,
which spares jobs a service made at run time. Jobs alone record no configuration change.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from splice.server.runtime import Runtime
from tests.conftest import Cluster, InProcess, splice

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


# -- outgoing connections and channel kinds ----------------------------------------------------------------------

OUTGOING = textwrap.dedent(
    """\
    [[outgoing]]
    name = "billing"
    kind = "rest"
    address = "http://127.0.0.1:9/api"
    token_env = "BILLING_TOKEN"
    timeout = 5

    [[outgoing]]
    name = "cache"
    kind = "redis"
    address = "redis://127.0.0.1:6379/0"
    """
)
TOKEN = "t0k-for-the-apply-test"


async def outgoing_rows(server: InProcess) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in await runtime_of(server).repository.list_outgoing()}


async def stored_secrets(server: InProcess, name: str) -> dict[str, str]:
    row = (await outgoing_rows(server))[name]
    if not row["secrets"]:
        return {}
    return runtime_of(server).live.connections.key().decrypt(row["secrets"], row["key_id"], name)


async def test_outgoing_connections_are_created_sealed_then_left_alone(server: InProcess) -> None:
    runtime = runtime_of(server)
    sequence = await runtime.repository.last_sequence()

    first = await apply(server, OUTGOING, secrets={"BILLING_TOKEN": TOKEN, "UNUSED": "x"})
    assert TOKEN not in str(first)
    assert changes(first) == [("create", "outgoing", "billing", []), ("create", "outgoing", "cache", [])]
    assert [s["status"] for s in first["servers"]] == ["deployed"]
    assert await runtime.repository.last_sequence() == sequence + 1
    shown = (await server.admin.get("/splice/admin/outgoing/billing")).json()
    assert (shown["address"], shown["timeout"], shown["retries"], shown["token"]) == (
        "http://127.0.0.1:9/api",
        5.0,
        2,
        "***",
    )
    assert "token" not in (await server.admin.get("/splice/admin/outgoing/cache")).json()
    assert await stored_secrets(server, "billing") == {"token": TOKEN}
    assert runtime.live.connections.kinds() == {"billing": "rest", "cache": "redis"}

    second = await apply(server, OUTGOING, secrets={"BILLING_TOKEN": TOKEN})
    assert (second["status"], second["changed"], second["servers"]) == ("unchanged", False, [])
    assert second["counts"] == {"create": 0, "update": 0, "delete": 0, "unchanged": 2}
    assert await runtime.repository.last_sequence() == sequence + 1


async def test_a_changed_field_or_secret_updates_the_connection(server: InProcess) -> None:
    await apply(server, OUTGOING, secrets={"BILLING_TOKEN": TOKEN})
    before = (await outgoing_rows(server))["billing"]

    moved = OUTGOING.replace("127.0.0.1:9/api", "127.0.0.1:9/v2")
    answer = await apply(server, moved, secrets={"BILLING_TOKEN": TOKEN})
    assert changes(answer) == [("update", "outgoing", "billing", ["address"])]
    after = (await outgoing_rows(server))["billing"]
    assert (after["config"]["address"], after["secrets"]) == ("http://127.0.0.1:9/v2", before["secrets"])

    rotated = await apply(server, moved, secrets={"BILLING_TOKEN": TOKEN + "-2"})
    assert changes(rotated) == [("update", "outgoing", "billing", ["token"])]
    assert await stored_secrets(server, "billing") == {"token": TOKEN + "-2"}
    assert (await apply(server, moved, secrets={"BILLING_TOKEN": TOKEN + "-2"}))["status"] == "unchanged"

    keyless = await apply(server, moved.replace('token_env = "BILLING_TOKEN"\n', ""))
    assert changes(keyless) == [("update", "outgoing", "billing", ["token"])]
    row = (await outgoing_rows(server))["billing"]
    assert (row["secret_names"], row["secrets"], row["key_id"]) == ([], None, None)
    assert "token" not in (await server.admin.get("/splice/admin/outgoing/billing")).json()


async def test_pruning_deletes_outgoing_connections_the_file_does_not_declare(server: InProcess) -> None:
    await apply(server, OUTGOING, secrets={"BILLING_TOKEN": TOKEN})
    cache_only = OUTGOING.split("\n\n", 1)[1]
    assert (await apply(server, cache_only))["status"] == "unchanged"
    pruned = await apply(server, cache_only, prune=True)
    assert changes(pruned) == [("delete", "outgoing", "billing", [])]
    assert set(await outgoing_rows(server)) == {"cache"}
    assert runtime_of(server).live.connections.kinds() == {"cache": "redis"}


async def test_a_missing_secret_changes_nothing(server: InProcess) -> None:
    refused = await apply(server, CHANNEL + "\n" + OUTGOING, status=422)
    (problem,) = refused["error"]["problems"]
    assert (problem["line"], problem["field"]) == (10, "outgoing[0].token_env")
    assert problem["message"] == "BILLING_TOKEN is not set in the secrets sent with the call"
    assert await outgoing_rows(server) == {}
    assert (await server.admin.get("/splice/admin/channels")).json()["channels"] == []


WEBSOCKET = textwrap.dedent(
    """\
    [[security]]
    name = "partners"
    kind = "apikey"
    key_env = "PARTNERS_KEY"

    [[channels]]
    name = "live"
    kind = "websocket"
    path = "/live"
    service = "tools.tick"
    security = "partners"
    idle_timeout = 60
    """
)


async def test_security_outgoing_and_channels_of_any_kind_are_one_change(server: InProcess) -> None:
    await deploy_tools(server)
    runtime = runtime_of(server)
    sequence = await runtime.repository.last_sequence()
    secrets = {"BILLING_TOKEN": TOKEN, "PARTNERS_KEY": "k"}
    answer = await apply(server, WEBSOCKET + "\n" + OUTGOING, secrets=secrets)
    assert changes(answer) == [
        ("create", "security", "partners", []),
        ("create", "outgoing", "billing", []),
        ("create", "outgoing", "cache", []),
        ("create", "channel", "live", []),
    ]
    assert await runtime.repository.last_sequence() == sequence + 1
    (live,) = (await server.admin.get("/splice/admin/channels")).json()["channels"]
    assert (live["kind"], live["path"], live["security"]) == ("websocket", "/live", "partners")
    assert live["options"] == {"max_message": 1048576, "idle_timeout": 60.0, "ping_interval": None}
    assert [spec.name for spec in runtime.live.of("websocket")] == ["live"]
    assert (await apply(server, WEBSOCKET + "\n" + OUTGOING, secrets=secrets))["status"] == "unchanged"

    edited = WEBSOCKET.replace("idle_timeout = 60", "idle_timeout = 30")
    assert changes(await apply(server, edited + "\n" + OUTGOING, secrets=secrets)) == [
        ("update", "channel", "live", ["idle_timeout"])
    ]


async def test_a_pickup_file_takes_outgoing_secrets_from_the_servers_environment(
    server: InProcess, tmp_path: Path
) -> None:
    runtime = runtime_of(server)
    runtime.environ = {"BILLING_TOKEN": TOKEN}
    file = tmp_path / "billing.splice.toml"
    file.write_text(OUTGOING, encoding="utf-8")
    assert (await runtime.apply_config(file))["changed"] is True
    assert await stored_secrets(server, "billing") == {"token": TOKEN}
    assert (await runtime.apply_config(file))["changed"] is False


BASIC = textwrap.dedent(
    """\
    [[outgoing]]
    name = "billing"
    kind = "rest"
    address = "http://127.0.0.1:9/api"
    username = "shop"
    password_env = "BILLING_PASSWORD"
    """
)


def test_splice_apply_sends_outgoing_secrets_from_its_environment(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command on a real cluster: the secret travels once, is shown as ***, and the same file again is
    no change."""
    file = tmp_path / "splice.toml"
    file.write_text(BASIC, encoding="utf-8")
    monkeypatch.setenv("BILLING_PASSWORD", TOKEN)
    applied = splice("apply", str(file), "--cluster", str(cluster.directory))
    assert f"{file}: create outgoing connection billing" in applied.stdout
    with cluster.admin() as admin:
        shown = admin.get("/splice/admin/outgoing/billing").json()
    assert (shown["username"], shown["password"]) == ("shop", "***")
    again = splice("apply", str(file), "--cluster", str(cluster.directory))
    assert f"{file}: no change" in again.stdout
    for result in (applied, again):
        assert TOKEN not in result.stdout + result.stderr
