"""What a service sees of its call: ``self.request.input`` (``InputView``) and ``self.request.scheduler``
(``SchedulerRun``), by attribute and by key."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from splice.server.core.service import InputView, SchedulerRun
from tests.conftest import InProcess


def test_input_by_attribute_and_by_key() -> None:
    view = InputView({"id": 7, "items": [1, 2], "note": None}, fields=["id", "items", "note"])
    assert view.id == view["id"] == 7
    assert view.items == [1, 2]  # a declared field wins over the mapping method of its name
    assert "note" in view
    assert "other" not in view
    assert view.get("other", 3) == 3
    assert list(view) == ["id", "items", "note"]
    assert list(view.keys()) == ["id", "items", "note"]
    assert dict(view) == {"id": 7, "items": [1, 2], "note": None}
    assert view == {"id": 7, "items": [1, 2], "note": None}
    assert len(view) == 3
    assert isinstance(view, Mapping)
    assert view.model_instance is None
    with pytest.raises(KeyError):
        view["other"]
    with pytest.raises(AttributeError, match="the input has no field 'other'"):
        _ = view.other


def test_an_undeclared_payloads_keys_never_hide_the_mapping_methods() -> None:
    view = InputView({"get": 1, "items": 2, "a": 3})  # no Input declared: the payload as sent
    assert view.get("get") == 1
    assert list(view.items()) == [("get", 1), ("items", 2), ("a", 3)]
    assert view.a == 3
    assert view["items"] == 2


def test_input_is_still_the_dict_it_was() -> None:
    view = InputView({"a": 1, "b": [2]}, fields=["a", "b"])
    assert json.loads(json.dumps(view)) == {"a": 1, "b": [2]}  # services that logged or forwarded it keep working
    view["a"] = 2
    assert view.a == 2
    assert copy.copy(view) == view
    assert pickle.loads(pickle.dumps(view)).a == 2


RUN = SchedulerRun(
    job="nightly",
    job_id=4,
    run="4:1700000000000000",
    slot="2023-11-14T22:13:20+00:00",
    kind="scheduled",
    attempt=2,
    missed=1,
    scheduler="scheduler1",
)


@pytest.mark.parametrize("key", ["job", "job_id", "run", "slot", "kind", "attempt", "missed", "scheduler"])
def test_scheduler_run_by_attribute_and_by_key(key: str) -> None:
    assert getattr(RUN, key) == RUN[key]


def test_scheduler_run_is_a_frozen_dict_to_json_and_dict() -> None:
    as_dict = dict(RUN)
    assert list(as_dict) == [f.name for f in dataclasses.fields(SchedulerRun)]
    assert json.loads(json.dumps(RUN)) == as_dict
    assert pickle.loads(pickle.dumps(RUN)) == RUN
    assert copy.deepcopy(RUN) == RUN
    assert dataclasses.replace(RUN, attempt=3)["attempt"] == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        RUN.job = "other"  # type: ignore[misc]
    for change in (
        lambda: RUN.__setitem__("job", "other"),
        lambda: RUN.update(job="other"),
        lambda: RUN.pop("job"),
        lambda: RUN.clear(),
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert RUN["job"] == RUN.job == "nightly"


ATTRIBUTES = textwrap.dedent(
    """
    import json
    from pathlib import Path

    from splice.server import Service


    class Seen(Service):
        name = "tools.seen"

        def handle(self):
            run = self.request.scheduler
            seen = {"job": run.job, "job_id": run.job_id, "attempt": run.attempt, "by_key": run["run"]}
            Path(self.request.payload["file"]).write_text(json.dumps({"attributes": seen, "json": run}))
    """
)


@pytest.mark.parametrize("odb_url", ["sqlite"], indirect=True)
async def test_a_service_run_by_the_scheduler_reads_attributes(server: InProcess, tmp_path: Path) -> None:
    modules = {"modules": [{"path": "tools.py", "source": ATTRIBUTES}]}
    assert (await server.admin.post("/splice/admin/deploy", json=modules)).status_code == 200
    record = tmp_path / "seen.json"
    run = {"job_id": 3, "slot_us": 5, "job": "tick", "service": "tools.seen", "cid": "c" * 24, "attempt": 2}
    answer = await server.admin.post(
        "/splice/admin/scheduler/dispatch", json={"runs": [{**run, "payload": {"file": str(record)}}]}
    )
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.text.splitlines()[0])["status"] == "ok", answer.text
    seen = json.loads(record.read_text())
    assert seen["attributes"] == {"job": "tick", "job_id": 3, "attempt": 2, "by_key": "3:5"}
    assert seen["json"]["job"] == "tick"
