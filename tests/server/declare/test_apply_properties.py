"""Applying a declaration is idempotent, on a real server (``POST /splice/admin/apply``), with hypothesis.

For generated valid splice.toml files (security definitions with their secrets, REST channels, cron jobs), the
first apply answers 200 and the same file applied again plans nothing but ``unchanged``: what the file says and
what the cluster stored compare equal, field by field (defaults, methods' case and order, secrets by hash).
Each case prunes, so it starts from what the previous one declared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given

from tests._hypothesis import budget
from tests.conftest import Cluster, make_cluster, running
from tests.server.declare.test_reader_properties import declarations, toml_document


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running(make_cluster(tmp_path_factory.mktemp("apply") / "cluster")) as made:
        yield made


@given(written=declarations())
@budget(20)
def test_a_declaration_applied_twice_changes_nothing_the_second_time(
    written: dict[str, list[dict[str, Any]]], cluster: Cluster
) -> None:
    text = toml_document(written)
    secrets = {s.get("password_env") or s["key_env"]: f"secret-of-{s['name']}" for s in written.get("security", [])}
    body = {"file": "splice.toml", "text": text, "secrets": secrets, "prune": True}
    with cluster.admin() as admin:
        first = admin.post("/splice/admin/apply", json=body)
        assert first.status_code == 200, f"{text}\n{first.text}"
        again = admin.post("/splice/admin/apply", json={**body, "dry_run": True})
    assert again.status_code == 200, again.text
    changed = [c for c in again.json()["changes"] if c["action"] != "unchanged"]
    assert changed == [], f"{text}\n{changed}"
