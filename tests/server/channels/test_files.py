"""File channels on a real server in-process: files dropped in a directory invoke a real deployed service.

The service appends what it saw (file name, bytes, headers, server) to a log file; the tests poll the
directory and the log, never sleep for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import textwrap
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from splice.server.channels._filedrop import Settling, move_without_replacing, unique_names
from splice.server.channels.files import FileChannels
from tests.conftest import InProcess, free_port, in_process

SERVICE = textwrap.dedent(
    """
    import json, os
    from splice.server import Service

    class Record(Service):
        name = "files.record"

        def handle(self):
            data = self.request.payload
            if data.startswith(b"fail"):
                raise ValueError("asked to fail by " + self.request.path)
            line = {{
                "path": self.request.path,
                "channel": self.request.channel,
                "text": data.decode(),
                "headers": dict(self.request.headers),
                "server": self.server,
                "cid": self.cid,
            }}
            fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (json.dumps(line) + "\\n").encode())
            finally:
                os.close(fd)
    """
)


@dataclass
class Setup:
    server: InProcess
    part: FileChannels
    cluster: Path
    log: Path

    def records(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    async def channel(self, **fields: Any) -> None:
        body = {"name": "inbox", "kind": "file", "service": "files.record", "directory": "inbox", "settle": 0.1}
        answer = await self.server.admin.post("/splice/admin/channels", json={**body, **fields})
        assert answer.status_code == 201, answer.text


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    from splice.server.cli.cluster import quickstart_create

    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    log = tmp_path / "calls.log"
    async with in_process(directory) as server:
        body = {"modules": [{"path": "files_record.py", "source": SERVICE.format(log=str(log))}]}
        answer = await server.admin.post("/splice/admin/deploy", json=body)
        assert answer.status_code == 200, answer.text
        part = next(p for p in server.runtime.background if isinstance(p, FileChannels))  # type: ignore[attr-defined]
        yield Setup(server, part, directory, log)


async def eventually(check: Callable[[], object], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s: {check}")
        await asyncio.sleep(0.02)
    return result


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file()) if directory.exists() else []


async def test_a_file_invokes_the_service_with_its_bytes_and_name_then_lands_in_done(setup: Setup) -> None:
    await setup.channel()
    await setup.part.start()
    inbox = setup.cluster / "inbox"  # relative to the cluster directory, made by the channel
    await eventually(lambda: (inbox / "done").is_dir() and (inbox / "failed").is_dir())
    (inbox / "order-1.json").write_bytes(b'{"id": 1}')

    await eventually(lambda: names(inbox / "done") == ["order-1.json"])
    [record] = setup.records()
    assert record["path"] == "order-1.json"
    assert record["channel"] == "inbox"
    assert record["text"] == '{"id": 1}'  # the bytes as they are: not parsed as JSON
    assert record["headers"] == {"x-splice-file": "order-1.json", "x-splice-file-size": "9"}
    assert record["server"] == "server1"
    assert (inbox / "done" / "order-1.json").read_bytes() == b'{"id": 1}'
    assert names(inbox) == []
    assert names(inbox / ".splice" / "server1") == []


async def test_a_failure_goes_to_failed_with_the_reason_and_the_cid(setup: Setup) -> None:
    await setup.channel()
    await setup.part.start()
    inbox = setup.cluster / "inbox"
    await eventually(lambda: (inbox / "failed").is_dir())
    (inbox / "bad.txt").write_bytes(b"fail, please")

    await eventually(lambda: names(inbox / "failed") == ["bad.txt", "bad.txt.error.txt"])
    assert (inbox / "failed" / "bad.txt").read_bytes() == b"fail, please"
    why = (inbox / "failed" / "bad.txt.error.txt").read_text()
    assert "ValueError: asked to fail by bad.txt" in why
    assert "service: files.record" in why
    assert re.search(r"^cid: [0-9a-f]{24}$", why, re.MULTILINE), why
    assert names(inbox / "done") == []


async def test_a_file_still_being_written_is_taken_only_once_it_settled(setup: Setup) -> None:
    await setup.channel(settle=1.5)
    await setup.part.start()
    inbox = setup.cluster / "inbox"
    await eventually(lambda: (inbox / "done").is_dir())
    parts = [f"line {i}\n" for i in range(20)]
    with (inbox / "slow.log").open("a") as file:
        for part in parts:
            file.write(part)
            file.flush()
            await asyncio.sleep(0.05)
            assert (inbox / "slow.log").exists()  # not taken while it grows

    await eventually(lambda: names(inbox / "done") == ["slow.log"])
    assert [r["text"] for r in setup.records()] == ["".join(parts)]


async def test_a_file_over_max_bytes_goes_to_failed_without_a_call(setup: Setup) -> None:
    await setup.channel(max_bytes=10)
    await setup.part.start()
    inbox = setup.cluster / "inbox"
    await eventually(lambda: (inbox / "failed").is_dir())
    (inbox / "big.bin").write_bytes(b"x" * 11)
    (inbox / "small.bin").write_bytes(b"x" * 10)

    await eventually(lambda: names(inbox / "failed") == ["big.bin", "big.bin.error.txt"])
    assert "the file has 11 bytes, more than max_bytes (10)" in (inbox / "failed" / "big.bin.error.txt").read_text()
    await eventually(lambda: names(inbox / "done") == ["small.bin"])
    assert [r["path"] for r in setup.records()] == ["small.bin"]


async def test_only_files_matching_the_pattern_are_taken(setup: Setup) -> None:
    inbox = setup.cluster / "inbox"
    (inbox / "sub").mkdir(parents=True)
    for name in ("notes.txt", ".hidden.csv", "sub/nested.csv"):
        (inbox / name).write_text(name)
    await setup.channel(pattern="*.csv")
    await setup.part.start()
    (inbox / "rows.csv").write_text("a,b")

    await eventually(lambda: names(inbox / "done") == ["rows.csv"])
    # The others were there first, complete as early as rows.csv: taken with it if they were taken at all.
    assert names(inbox) == [".hidden.csv", "notes.txt"]
    assert names(inbox / "sub") == ["nested.csv"]
    assert [r["path"] for r in setup.records()] == ["rows.csv"]


async def test_files_left_in_the_work_area_are_handled_again(setup: Setup) -> None:
    inbox = setup.cluster / "inbox"
    own, gone = inbox / ".splice" / "server1", inbox / ".splice" / "server9"
    own.mkdir(parents=True)
    gone.mkdir(parents=True)
    (own / "left.txt").write_text("left by this server")  # it died while handling the file
    (gone / "orphan.txt").write_text("left by a server that is not live")
    await setup.channel()
    await setup.part.start()

    await eventually(lambda: names(inbox / "done") == ["left.txt", "orphan.txt"])
    assert sorted(r["text"] for r in setup.records()) == ["left by a server that is not live", "left by this server"]
    assert names(own) == []
    assert names(gone) == []


async def test_a_name_already_in_done_is_kept_and_the_new_file_gets_a_timestamp(setup: Setup) -> None:
    await setup.channel()
    await setup.part.start()
    inbox = setup.cluster / "inbox"
    await eventually(lambda: (inbox / "done").is_dir())
    (inbox / "same.txt").write_text("first")
    await eventually(lambda: names(inbox / "done") == ["same.txt"])
    (inbox / "same.txt").write_text("second")

    done = await eventually(lambda: len(found := names(inbox / "done")) == 2 and found)
    assert done[1] == "same.txt"
    assert re.fullmatch(r"same-\d{8}-\d{6}-\d{6}\.txt", done[0])
    assert (inbox / "done" / "same.txt").read_text() == "first"
    assert (inbox / "done" / done[0]).read_text() == "second"


async def test_a_channel_deleted_stops_and_a_channel_created_starts_at_the_reload(setup: Setup) -> None:
    await setup.channel()
    await setup.part.start()
    assert list(setup.part.watchers) == ["inbox"]
    answer = await setup.server.admin.delete("/splice/admin/channels/inbox")
    assert answer.status_code == 200, answer.text
    assert setup.part.watchers == {}

    await setup.channel(name="other", directory=str(setup.cluster / "other"))  # absolute this time
    assert list(setup.part.watchers) == ["other"]
    await eventually(lambda: (setup.cluster / "other" / "done").is_dir())
    (setup.cluster / "other" / "x.txt").write_text("x")
    await eventually(lambda: names(setup.cluster / "other" / "done") == ["x.txt"])
    assert [r["channel"] for r in setup.records()] == ["other"]


async def test_files_wait_while_the_service_is_not_deployed(setup: Setup) -> None:
    await setup.channel(service="files.later")
    await setup.part.start()
    inbox = setup.cluster / "inbox"
    await eventually(lambda: (inbox / "done").is_dir())
    (inbox / "early.txt").write_text("early")
    source = SERVICE.format(log=str(setup.log)).replace('"files.record"', '"files.later"')
    answer = await setup.server.admin.post(
        "/splice/admin/deploy", json={"modules": [{"path": "files_later.py", "source": source}]}
    )
    assert answer.status_code == 200, answer.text

    await eventually(lambda: names(inbox / "done") == ["early.txt"])
    assert names(inbox / "failed") == []


def test_a_file_is_complete_once_seen_unchanged_for_settle_seconds() -> None:
    settling = Settling(1.0)
    settling.observe("a", (5, 100), now=10.0)
    settling.observe("a", (5, 100), now=10.5)
    assert settling.complete() == []
    assert settling.due(10.9) == []
    assert settling.due(11.0) == ["a"]
    assert settling.next_due() == 11.0
    settling.observe("a", (6, 200), now=11.0)  # it grew: the wait starts again
    settling.observe("a", (6, 200), now=11.9)
    assert settling.complete() == []
    settling.observe("a", (6, 200), now=12.0)
    assert settling.complete() == ["a"]
    assert settling.next_due() is None
    settling.observe("a", None, now=12.1)  # gone: taken by another server
    assert settling.complete() == []
    assert len(settling) == 0
    at_once = Settling(0)
    at_once.observe("b", (1, 1), now=0.0)
    assert at_once.complete() == ["b"]


def test_unique_names_keep_the_extensions_after_the_timestamp() -> None:
    when = datetime(2026, 12, 3, 10, 11, 12, 123456, tzinfo=UTC)
    found = unique_names("invoice.tar.gz", when)
    assert [next(found) for _ in range(3)] == [
        "invoice.tar.gz",
        "invoice-20261203-101112-123456.tar.gz",
        "invoice-20261203-101112-123456-2.tar.gz",
    ]
    assert next(unique_names("README", when)) == "README"


def test_a_move_never_replaces_a_file(tmp_path: Path) -> None:
    when = datetime(2026, 12, 3, tzinfo=UTC)
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "a.txt").write_text("there first")
    (tmp_path / "a.txt").write_text("new")
    assert (
        move_without_replacing(tmp_path / "a.txt", tmp_path / "done", "a.txt", when) == "a-20261203-000000-000000.txt"
    )
    assert (tmp_path / "done" / "a.txt").read_text() == "there first"
    assert not (tmp_path / "a.txt").exists()
    with pytest.raises(FileNotFoundError):
        move_without_replacing(tmp_path / "a.txt", tmp_path / "done", "a.txt", when)
    assert len(os.listdir(tmp_path / "done")) == 2
