"""What a server reads from the ODB to catch up (``changes``): one read gives the newest sequence, the heads, whether
the configuration changed, and the sources of the modules this server lacks, also when it is out of step."""

from __future__ import annotations

from typing import Any

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
