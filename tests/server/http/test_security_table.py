"""Who may call what, table-driven over the admin API's own OpenAPI document, on a real running server.

Every operation the document lists refuses, with 401 and a JSON error carrying the cid: no credentials, a wrong
token, another scheme, the right token in a query string (``?token=``, ``?access_token=``) instead of the header.
The cluster's internal token (derived from the cluster key) opens the internal endpoints only. The dashboard:
every route without a session is refused or sent to /login, never answered with data.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Cluster, make_cluster, running

UNKNOWN = "h1-no-such-thing"
_PARAMETER = re.compile(r"\{[^}]+\}")
PUBLIC_BESIDES = [("GET", "/splice/metrics"), ("GET", "/splice/openapi.json")]
"""Outside /splice/admin but behind the admin token all the same."""


@dataclass(frozen=True)
class Call:
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path_factory.mktemp("security") / "cluster")) as made:
        yield made


@pytest.fixture(scope="module")
def calls(cluster: Cluster) -> list[Call]:
    with cluster.admin() as admin:
        document = admin.get("/splice/admin/openapi.json").raise_for_status().json()
    found = [
        Call(method.upper(), _PARAMETER.sub(UNKNOWN, path))
        for path, operations in document["paths"].items()
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(found) > 40, f"the document lists only {len(found)} operations"
    return found + [Call(method, path) for method, path in PUBLIC_BESIDES]


def internal_token(cluster: Cluster) -> str:
    from splice.server.cluster.credentials import internal_token
    from splice.server.config import load_settings

    token = internal_token(load_settings(cluster.directory, {}))
    assert len(token) >= 32, f"the internal token is not derived: {token!r}"
    return token


def _send(
    client: httpx.Client, call: Call, headers: dict[str, str], params: dict[str, str] | None = None
) -> httpx.Response:
    body = {} if call.method in {"POST", "PUT", "PATCH"} else None
    return client.request(call.method, call.path, headers=headers, params=params, json=body)


def _refused(answer: httpx.Response, call: Call, how: str) -> str | None:
    """What is wrong with ``answer`` as a refusal, or None."""
    if answer.status_code != 401:
        return f"{call} {how}: {answer.status_code} {answer.text[:200]}"
    error = answer.json().get("error", {})
    if error.get("code") != "unauthorized" or not error.get("message") or not answer.headers.get("x-splice-cid"):
        return f"{call} {how}: 401 without a JSON error and cid: {answer.text[:200]}"
    return None


def test_every_admin_operation_refuses_a_caller_without_the_token(cluster: Cluster, calls: list[Call]) -> None:
    basic = "Basic " + base64.b64encode(f"admin:{cluster.token}".encode()).decode()
    ways: list[tuple[str, dict[str, str], dict[str, str] | None]] = [
        ("without credentials", {}, None),
        ("with a wrong token", {"Authorization": "Bearer " + "0" * len(cluster.token)}, None),
        ("with the token under another scheme", {"Authorization": basic}, None),
        ("with a bearer and no token", {"Authorization": "Bearer"}, None),
        ("with the token in ?token=", {}, {"token": cluster.token}),
        ("with the token in ?access_token=", {}, {"access_token": cluster.token}),
    ]
    wrong: list[str] = []
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        for call in calls:
            for how, headers, params in ways:
                if problem := _refused(_send(client, call, headers, params), call, how):
                    wrong.append(problem)
    assert not wrong, "\n".join(wrong)


def test_the_internal_token_opens_only_the_internal_endpoints(cluster: Cluster, calls: list[Call]) -> None:
    from splice.server.http.admin import internal_path

    token = internal_token(cluster)
    headers = {"Authorization": f"Bearer {token}"}
    internal = [call for call in calls if internal_path(call.path)]
    expected = {"cluster/sync", "cluster/events", "scheduler/dispatch", "pickup", f"outgoing/{UNKNOWN}/ping"}
    assert {c.path.removeprefix("/splice/admin/") for c in internal} == expected
    wrong: list[str] = []
    with httpx.Client(base_url=cluster.url, timeout=30) as client:
        for call in calls:
            answer = _send(client, call, headers)
            if call in internal:
                if answer.status_code in (401, 403) or answer.status_code >= 500:
                    wrong.append(f"{call} refused the internal token: {answer.status_code} {answer.text[:200]}")
            elif problem := _refused(answer, call, "with the internal token"):
                wrong.append(problem)
        deploy = {"modules": [{"path": "h1_internal.py", "source": "x = 1\n"}]}
        answer = client.post("/splice/admin/deploy", json=deploy, headers=headers)
        if answer.status_code != 401:
            wrong.append(f"POST /splice/admin/deploy with the internal token: {answer.status_code}")
    assert not wrong, "\n".join(wrong)


def test_the_admin_token_still_opens_everything(cluster: Cluster, calls: list[Call]) -> None:
    with cluster.admin() as admin:
        refused = [str(call) for call in calls if _send(admin, call, {}).status_code in (401, 403)]
    assert not refused


# -- the dashboard ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from tests.dashboard.conftest import start_dashboard

    made = start_dashboard(cluster, tmp_path_factory.mktemp("security-dashboard") / "dashboard")
    try:
        yield made.url, made.directory
    finally:
        made.process.terminate()
        made.process.wait(10)


OPEN_DASHBOARD = {"/login", "/healthz"}
"""What the dashboard answers without a session: the login form and the health check (no data in either)."""


def test_every_dashboard_route_refuses_a_caller_without_a_session(dashboard: tuple[str, Path]) -> None:
    from starlette.routing import Route

    from splice.dashboard.app import create_app
    from splice.dashboard.config import load_dashboard_settings

    url, directory = dashboard
    app = create_app(load_dashboard_settings(directory, {}))
    routes = [
        (method, _PARAMETER.sub(UNKNOWN, route.path))
        for route in app.routes
        if isinstance(route, Route) and route.path not in OPEN_DASHBOARD
        for method in sorted(route.methods or ())
        if method != "HEAD"
    ]
    assert len(routes) > 15, routes
    wrong: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for method, path in routes:
            for headers in ({}, {"HX-Request": "true"}, {"Cookie": "splice_session=forged"}):
                answer = client.request(method, path, headers=headers)
                to_login = answer.is_redirect and answer.headers.get("location", "").startswith("/login")
                if answer.status_code not in (401, 403) and not to_login:
                    wrong.append(f"{method} {path} {headers}: {answer.status_code} {answer.text[:120]!r}")
    assert not wrong, "\n".join(wrong)
