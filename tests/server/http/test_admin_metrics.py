"""Per-service metrics on one in-process server: every call counted whatever the channel, the JSON answer, and
``/splice/metrics`` as Prometheus text (parsed by prometheus_client) behind the admin token."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import InProcess

pytestmark = pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)  # metrics never touch the ODB

SHOP = textwrap.dedent(
    """
    from splice.server import HTTPError, Service


    class Fine(Service):
        name = "m.fine"

        def handle(self):
            self.response.payload = {"ok": True}


    class Broken(Service):
        name = "m.broken"

        async def handle(self):
            raise KeyError("id")


    class Missing(Service):
        name = "m.missing"

        def handle(self):
            raise HTTPError(404, "no such order")


    class Nested(Service):
        name = "m.nested"

        async def handle(self):
            self.response.payload = await self.ainvoke("m.fine")
    """
)


async def setup(server: InProcess) -> None:
    deployed = await server.admin.post(
        "/splice/admin/deploy", json={"modules": [{"path": "m/shop.py", "source": SHOP}]}
    )
    assert deployed.status_code == 200, deployed.text
    channel = {"name": "fine-rest", "path": "/fine", "service": "m.fine"}
    created = await server.admin.post("/splice/admin/channels", json=channel)
    assert created.status_code == 201, created.text


async def invoke(server: InProcess, name: str) -> int:
    answer = await server.admin.post("/splice/admin/invoke", json={"service": name})
    return answer.status_code


async def figures(server: InProcess, **query: str) -> dict[str, Any]:
    answer = await server.admin.get("/splice/admin/metrics", params=query)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def test_failing_and_succeeding_calls_are_counted_with_percentiles(server: InProcess) -> None:
    await setup(server)
    assert await invoke(server, "m.fine") == 200
    assert (await server.client.get("/fine")).status_code == 200  # a REST channel
    assert await invoke(server, "m.broken") == 500
    assert await invoke(server, "m.missing") == 404  # the service's own 4xx: an answer, not an error
    assert await invoke(server, "m.nested") == 200  # counts m.nested and, inside it, m.fine

    body = await figures(server)
    assert body["server"] == "server1"
    assert body["started_at"] <= body["now"]
    services = {s["name"]: s for s in body["services"]}
    assert set(services) == {"m.fine", "m.broken", "m.missing", "m.nested"}
    fine = services["m.fine"]
    assert (fine["calls"], fine["errors"]) == (3, 0)
    assert 0 < fine["p50_ms"] <= fine["p99_ms"]
    assert [c["channel"] for c in fine["recent"]] == [None, "fine-rest", None]  # newest first
    assert all(c["ok"] and c["error"] is None and len(c["cid"]) == 24 for c in fine["recent"])
    assert fine["failures"] == []
    assert sum(m["calls"] for m in fine["minutes"]) == 3

    broken = services["m.broken"]
    assert (broken["calls"], broken["errors"]) == (1, 1)
    (failure,) = broken["failures"]
    assert failure["ok"] is False
    assert failure["error"].startswith("ServiceFailed: ")
    assert "KeyError" in failure["error"]
    assert failure["ms"] > 0
    assert broken["recent"] == broken["failures"]
    assert broken["p50_ms"] is not None
    assert broken["p99_ms"] is not None
    assert (services["m.missing"]["calls"], services["m.missing"]["errors"]) == (1, 0)

    total = body["total"]
    assert (total["calls"], total["errors"]) == (6, 1)
    assert total["p50_ms"] <= total["p99_ms"]
    assert sum(m["errors"] for m in total["minutes"]) == 1

    only = await figures(server, service="m.broken")
    assert [s["name"] for s in only["services"]] == ["m.broken"]
    assert only["total"]["calls"] == 6
    never = await figures(server, service="m.never")
    assert never["services"][0]["calls"] == 0


async def test_prometheus_text_parses_and_needs_the_token(server: InProcess) -> None:
    await setup(server)
    assert await invoke(server, "m.fine") == 200
    assert await invoke(server, "m.broken") == 500

    refused = await server.client.get("/splice/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    wrong = await server.client.get("/splice/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    answer = await server.admin.get("/splice/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert (families["splice_service_calls"].type, families["splice_service_errors"].type) == ("counter", "counter")
    assert families["splice_service_duration_seconds"].type == "histogram"
    values = {
        (s.name, s.labels.get("service"), s.labels.get("le")): s.value for f in families.values() for s in f.samples
    }
    assert values[("splice_service_calls_total", "m.fine", None)] == 1
    assert values[("splice_service_errors_total", "m.broken", None)] == 1
    assert values[("splice_service_errors_total", "m.fine", None)] == 0
    assert values[("splice_service_duration_seconds_count", "m.broken", None)] == 1
    assert values[("splice_service_duration_seconds_bucket", "m.fine", "+Inf")] == 1
    assert values[("splice_service_duration_seconds_sum", "m.fine", None)] > 0
    labels = {s.labels["server"] for f in families.values() for s in f.samples}
    assert labels == {"server1"}
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in families["splice_service_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["service"] == "m.fine"
    ]
    assert buckets == sorted(buckets)  # bounds rise, counts are cumulative
