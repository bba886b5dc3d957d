"""What a server reads from the ODB to catch up (``changes``): one read gives the newest sequence, the heads, whether
the configuration changed, and the sources of the modules this server lacks, also when it is out of step."""

from __future__ import annotations

import hashlib
import sys
from typing import Any

from splice.server.deploy import ModuleSource
from tests.conftest import InProcess

SOURCE = (
    'from splice.server import Service\n\nV = {v}\n\n\nclass S(Service):\n    name = "sync.{n}"\n\n'
    "    def handle(self):\n        return V\n"
)


async def _deploy(server: InProcess, path: str, value: int) -> int:
    name = path.removesuffix(".py")
    body = {"modules": [{"path": path, "source": SOURCE.format(v=value, n=name)}]}
    answer = await server.admin.post("/splice/admin/deploy", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["sequence"])


async def test_one_read_gives_a_server_one_behind_the_changed_module_with_its_source(server: InProcess) -> None:
    repository: Any = server.runtime.repository  # type: ignore[attr-defined]
    first = await _deploy(server, "a.py", 1)
    await _deploy(server, "b.py", 1)
    mine = {p: (r.version, r.sha256) for p, r in server.runtime.engine.records.items()}  # type: ignore[attr-defined]
    latest = await _deploy(server, "a.py", 2)

    sequence, heads, configured, records = await repository.changes(latest - 1, mine)
    assert sequence == latest
    assert set(heads) == {"a.py", "b.py"}
    assert heads["a.py"][0] == 2
    assert configured is False
    assert [(r.path, r.version, "V = 2" in r.source) for r in records] == [("a.py", 2, True)]

    # Nothing new: nothing read beyond the sequence.
    assert await repository.changes(latest, mine) == (latest, {}, False, [])

    # Out of step (it lost b.py, changed before ``since``): b.py's source comes too.
    sequence, _, _, records = await repository.changes(latest - 1, {"a.py": mine["a.py"]})
    assert sorted((r.path, r.version) for r in records) == [("a.py", 2), ("b.py", 1)]
    assert all(r.source.startswith("from splice.server") for r in records)

    # A forced sync (since -1) with nothing held reads everything; a configuration change is seen after ``since``.
    changed = await repository.record_config_change("channels", "server2")
    sequence, heads, configured, records = await repository.changes(first, {})
    assert (sequence, configured) == (changed, True)
    assert sorted(r.path for r in records) == ["a.py", "b.py"]
    _, _, configured, _ = await repository.changes(changed - 1, mine)
    assert configured is True


async def test_a_notice_s_change_is_taken_only_by_a_server_one_step_behind_it(sqlite_server: InProcess) -> None:
    """A deployment's notice carries the change (``DeployResult.change``): a server that applied the sequence
    before it takes it without reading the ODB; any other (or a change that does not check out) is refused, and
    the server syncs with the ODB instead."""
    engine: Any = sqlite_server.runtime.engine  # type: ignore[attr-defined]
    await _deploy(sqlite_server, "c.py", 1)
    before = engine.applied
    # What another server's deployment of c.py, version 2, as the next sequence, would carry.
    source = SOURCE.format(v=2, n="c")
    module = {"path": "c.py", "module": "c", "version": 2, "source": source, "deployed_by": "", "origin": None}
    module["sha256"] = hashlib.sha256(source.encode()).hexdigest()
    change = {"after": before, "sequence": before + 1, "modules": [module]}

    assert await engine.take_change({**change, "after": before - 1}) is None  # not one step behind it
    assert await engine.take_change({**change, "modules": [{**module, "sha256": "0" * 64}]}) is None
    assert await engine.take_change({**change, "modules": [{**module, "module": "d"}]}) is None
    assert await engine.take_change({"after": before}) is None
    assert engine.applied == before

    result = await engine.take_change(change)
    assert result is not None
    assert result.error is None
    assert (result.sequence, result.loaded, result.timings["read_ms"]) == (before + 1, {"c.py": 2}, 0.0)
    assert engine.applied == before + 1
    assert engine.records["c.py"].version == 2
    assert sys.modules["c"].V == 2


async def test_a_deployment_made_here_carries_its_change_for_the_notice(sqlite_server: InProcess) -> None:
    engine: Any = sqlite_server.runtime.engine  # type: ignore[attr-defined]
    await _deploy(sqlite_server, "e.py", 1)
    sources = [ModuleSource("e.py", SOURCE.format(v=2, n="e"))]
    result = await engine.deploy(sources)
    assert result.change is not None
    assert result.change["after"] == result.sequence - 1
    assert [(m["path"], m["version"], m["source"]) for m in result.change["modules"]] == [
        ("e.py", 2, sources[0].source)
    ]
