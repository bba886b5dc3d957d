"""Fuzz the admin API of a real cluster from its OpenAPI document, with schemathesis: every check, a fixed budget.

Unlike ``test_admin_contract`` (one server in a thread of the test process), this starts a real two-server cluster
with ``splice start`` (subprocesses, the ODB in SQLite, servers ringing each other), so what a case changes
(a deploy, a channel, a topic, a cache, a job, debugpy listening) goes through the real cluster path, and a
handler that crashes shows as the 5xx its process answers. Each operation gets a fixed, derandomized number of
cases, positive and negative (bodies, parameters and methods the document does not allow, missing or wrong
credentials), and every answer must be one the document allows: no 5xx, status, content type, headers, schema;
valid data accepted, invalid data refused. ``SPLICE_HYPOTHESIS_SEARCH=N`` makes a run random, N times as long.

Excluded, because they would take the server under test away or out of the test's hands:

- ``POST /debug`` with ``{"enabled": false}`` (or a body without ``enabled``): a server that listened drains and
  restarts without debugpy; ``{"enabled": true}`` is fuzzed (debugpy listens inside the server's process).
- ``POST /debug/pycharm``: connects the server's tracing to a PyCharm debug server at whatever host and port the
  case names (a DNS look-up and a connect timeout per case), and ``{"connect": false}`` drops its debugger.
- ``POST /scheduler/dispatch``: the scheduler's stream of runs (application/x-ndjson), which starts the runs sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import settings
from schemathesis.core.parameters import ParameterLocation

from splice.server.http.admin import OPERATIONS
from splice.server.http.openapi import document
from tests._hypothesis import SEARCH
from tests.conftest import Cluster, free_ports, make_cluster, running
from tests.server.http.test_admin_contract import JOB_RULES, SEMANTIC_422

EXAMPLES_PER_OPERATION = 20
EXCLUDED = {
    ("POST", "/splice/admin/debug/pycharm"),
    ("POST", "/splice/admin/scheduler/dispatch"),
}
KNOWN_DEFECTS: list[dict[str, Any]] = []
"""Operations let through a check by name while a defect in them waits for its fix (each entry says which); none
now: the two this fuzz found (a remote debug host refused as 400, GET /audit taking since=0.5) are fixed."""
CASES: list[str] = []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory: Path = tmp_path_factory.mktemp("fuzz") / "cluster"
    made = make_cluster(directory, servers=2)
    with (directory / "cluster.toml").open("a") as config:
        # POST /debug {"enabled": true} is fuzzed: debugpy listens for as long as the cluster runs, so not on the
        # default port, which every other cluster of the machine would then find taken
        config.write(f"\n[debug]\nport = {free_ports(2)}\n")
    with running(made):
        started = time.monotonic()
        yield made
        print(f"\nschemathesis: {len(CASES)} cases against a two-server cluster in {time.monotonic() - started:.0f} s")


def _expected(statuses: list[str], paths: set[str]) -> list[dict[str, Any]]:
    return [
        {"include-path": path, "checks": {"positive_data_acceptance": {"expected-statuses": statuses}}}
        for path in sorted(paths)
    ]


def fuzz_schema() -> Any:
    config = schemathesis.Config.from_dict(
        {
            "checks": {"enabled": True},
            "generation": {"mode": "all"},
            "operations": _expected(["2xx", "401", "403", "404", "409", "422"], SEMANTIC_422)
            + _expected(["2xx", "400", "401", "403", "404", "409"], JOB_RULES)
            + KNOWN_DEFECTS,
        }
    )
    loaded = schemathesis.openapi.from_dict(document("http://127.0.0.1:1", OPERATIONS), config=config)
    for method, path in sorted(EXCLUDED):
        loaded = loaded.exclude(method=method, path=path)
    return loaded


schema = fuzz_schema()


def _restarts_the_server(case: Any) -> bool:
    if (case.method, case.path) != ("POST", "/splice/admin/debug"):
        return False
    return not (isinstance(case.body, dict) and case.body.get("enabled") is True)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION * max(SEARCH, 1), deadline=None, derandomize=not SEARCH, database=None)
def test_every_answer_of_a_real_cluster_keeps_the_document(case: Any, cluster: Cluster) -> None:
    if _restarts_the_server(case):
        return
    CASES.append(f"{case.method} {case.path}")
    case.call_and_validate(base_url=cluster.url, headers=_credentials(case, cluster), timeout=60)


def _credentials(case: Any, cluster: Cluster) -> dict[str, str]:
    """The cluster's token, unless the case's headers are its negative part (no or a wrong ``Authorization``).

    Putting the token back there would turn a case meant to be refused into a valid one, which the server rightly
    accepts and schemathesis then reports as "schema-violating request accepted".
    """
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        return {}
    return {"Authorization": f"Bearer {cluster.token}"}


def test_the_cluster_still_answers_after_the_fuzz(cluster: Cluster) -> None:
    with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}) as admin:
        assert admin.get("/splice/admin/server").status_code == 200
        for url in cluster.urls:
            assert httpx.get(f"{url}/splice/ping", timeout=10).status_code == 200
