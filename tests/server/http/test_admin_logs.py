"""``GET /splice/admin/logs``: parsing the log (table-driven), reading a file by tail and cursor, and a real server's
own log filtered by cid, service, level and text."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from splice.server.http.admin_logs import MAX_READ, Filter, parse_cursor, parse_log, read_log
from splice.server.logs import FORMAT
from tests.conftest import Cluster, eventually

A = "2026-12-02 19:56:07,145 INFO 123 splice.service.orders.get [cid abc] order read\n"
B = "2026-12-02 19:56:08,001 ERROR 123 splice.server.core.invoker [cid abc] service orders.get failed\n"
TRACE = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'id'\n"
C = "2026-12-02 19:56:09,500 WARNING 123 splice.admin [cid -] admin action: ann POST /splice/admin/deploy -> 200\n"


def line(at: str, level: str, logger: str, cid: str, message: str, service: str | None = None) -> dict[str, Any]:
    return {"at": at, "level": level, "pid": 123, "logger": logger, "cid": cid, "message": message, "service": service}


LA = line("2026-12-02 19:56:07,145", "INFO", "splice.service.orders.get", "abc", "order read", "orders.get")
LB = line("2026-12-02 19:56:08,001", "ERROR", "splice.server.core.invoker", "abc", "service orders.get failed")
LB_TRACE = {**LB, "message": LB["message"] + "\n" + TRACE.rstrip("\n")}
LC = line(
    "2026-12-02 19:56:09,500", "WARNING", "splice.admin", "-", "admin action: ann POST /splice/admin/deploy -> 200"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        (A, [LA]),
        (A + B + TRACE + C, [LA, LB_TRACE, LC]),
        (TRACE + A, [LA]),  # the end of a record cut by where the read started
        ("not a record\n" + C, [LC]),
        (A.replace("\n", "\r\n"), [LA]),
        (A.replace("order read", ""), [{**LA, "message": ""}]),
        (A.replace("order read", "ünïcødé [cid x] ok"), [{**LA, "message": "ünïcødé [cid x] ok"}]),
        (A.replace(" 123 ", " x "), []),  # not a pid: not a record start
    ],
)
def test_parse_log(text: str, expected: list[dict[str, Any]]) -> None:
    assert [record for record, _ in parse_log(text.encode())] == expected


def test_parse_log_gives_each_record_its_end_offset() -> None:
    data = (A + B + TRACE + C).encode()
    assert [end for _, end in parse_log(data, 1000)] == [
        1000 + len(A.encode()),
        1000 + len((A + B + TRACE).encode()),
        1000 + len(data),
    ]


def test_the_format_written_is_the_format_parsed(tmp_path: Path) -> None:
    handler = logging.FileHandler(tmp_path / "server.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("splice.service.shop.formats")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("hello %s", "there", extra={"cid": "c0ffee"})
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("it failed", extra={"cid": "c0ffee"})
    finally:
        logger.removeHandler(handler)
        handler.close()
    records = [r for r, _ in parse_log((tmp_path / "server.log").read_bytes())]
    assert [(r["level"], r["cid"], r["service"], r["pid"]) for r in records] == [
        ("WARNING", "c0ffee", "shop.formats", os.getpid()),
        ("ERROR", "c0ffee", "shop.formats", os.getpid()),
    ]
    assert records[0]["message"] == "hello there"
    assert records[1]["message"].startswith("it failed\nTraceback")
    assert records[1]["message"].endswith("ValueError: bad")


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [
        (Filter(), [LA, LB, LC]),
        (Filter(level="WARNING"), [LB, LC]),
        (Filter(level="ERROR"), [LB]),
        (Filter(level="CRITICAL"), []),
        (Filter(service="orders.get"), [LA]),
        (Filter(service="orders"), []),
        (Filter(cid="abc"), [LA, LB]),
        (Filter(q="ADMIN ACTION"), [LC]),
        (Filter(q="invoker"), [LB]),  # the logger's name counts too
        (Filter(level="INFO", cid="abc", q="failed"), [LB]),
    ],
)
def test_filters(wanted: Filter, expected: list[dict[str, Any]]) -> None:
    assert [x for x in (LA, LB, LC) if wanted(x)] == expected


@pytest.mark.parametrize(
    ("cursor", "expected"),
    [("12:34", (12, 34)), ("0:0", (0, 0)), ("", None), ("12", None), ("a:1", None), ("1:-1", None), ("1:2:3", None)],
)
def test_parse_cursor(cursor: str, expected: tuple[int, int] | None) -> None:
    assert parse_cursor(cursor) == expected


def test_tail_then_cursor_then_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    everything = Filter()
    assert read_log(path, "", 10, everything) == ("0:0", [])  # no log yet
    path.write_text(A + B + TRACE)
    cursor, lines = read_log(path, "", 10, everything)
    assert lines == [LA, LB_TRACE]
    assert read_log(path, cursor, 10, everything) == (cursor, [])
    with path.open("a") as handle:
        handle.write(C + A[:20])  # the last line is still being written
    cursor, lines = read_log(path, cursor, 10, everything)
    assert lines == [LC]
    with path.open("a") as handle:
        handle.write(A[20:])
    cursor, lines = read_log(path, cursor, 10, everything)
    assert lines == [LA]
    # more lines than the limit: the first ones, and the cursor goes on after them
    start = cursor
    with path.open("a") as handle:
        handle.write(A + B + C)
    cursor, lines = read_log(path, start, 2, everything)
    assert lines == [LA, LB]
    cursor, lines = read_log(path, cursor, 2, everything)
    assert lines == [LC]
    # the tail: the last ones
    assert read_log(path, "", 2, everything)[1] == [LB, LC]
    assert read_log(path, "", 10, Filter(cid="abc"))[1] == [LA, LB_TRACE, LA, LA, LB]
    # replaced by a new, shorter file: read from its start
    path.unlink()
    path.write_text(C)
    assert read_log(path, cursor, 10, everything)[1] == [LC]
    assert read_log(path, "garbage", 10, everything)[1] == [LC]  # not a cursor: the tail


def test_one_call_reads_at_most_max_read_bytes(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    count = MAX_READ // len(A) + 100
    path.write_text(A * count + C)
    cursor, lines = read_log(path, "", 5, Filter())
    assert lines == [LA] * 4 + [LC]
    _, lines = read_log(path, "", 100_000, Filter())
    assert len(lines) < count  # the tail starts MAX_READ bytes before the end, at a whole line
    assert lines[-1] == LC
    inode = os.stat(path).st_ino
    cursor, lines = read_log(path, f"{inode}:0", 100_000, Filter())
    assert 0 < len(lines) < count
    assert int(cursor.split(":")[1]) <= MAX_READ  # the rest comes with the next call
    _, rest = read_log(path, cursor, 100_000, Filter())
    assert len(lines) + len(rest) == count + 1


SERVICE = textwrap.dedent(
    """
    from splice.server import Service


    class Noisy(Service):
        name = "logs.noisy"

        def handle(self):
            self.logger.warning("noisy says %s", self.request.input.get("word"))
            self.response.payload = {"cid": self.cid}
    """
)


def test_a_real_servers_log_by_cid_service_level_and_text(cluster: Cluster) -> None:
    with cluster.admin() as admin:
        deployed = admin.post(
            "/splice/admin/deploy",
            json={"modules": [{"path": "logs/noisy.py", "source": SERVICE}]},
            headers={"X-Splice-Actor": "dashboard:ann"},
        )
        assert deployed.status_code == 200, deployed.text
        start = admin.get("/splice/admin/logs", params={"limit": 1})
        assert start.status_code == 200, start.text
        assert start.json()["server"] == "server1"
        cursor = start.json()["cursor"]

        cid = admin.post("/splice/admin/invoke", json={"service": "logs.noisy", "payload": {"word": "hi"}}).json()[
            "cid"
        ]

        def by_cid() -> list[dict[str, Any]]:
            lines: list[dict[str, Any]] = admin.get("/splice/admin/logs", params={"cid": cid}).json()["lines"]
            return lines

        lines = eventually(lambda: len(by_cid()) == 2 and by_cid())
        # the service's own line, then the admin call's (the invoke's cid is the admin call's)
        found, action = lines  # type: ignore[misc]
        assert action["message"] == "admin action: admin-api POST /splice/admin/invoke -> 200"
        assert (found["level"], found["service"], found["message"]) == ("WARNING", "logs.noisy", "noisy says hi")
        assert found["logger"] == "splice.service.logs.noisy"
        assert found["pid"] > 0

        def since() -> list[dict[str, Any]]:
            answer = admin.get("/splice/admin/logs", params={"after": cursor, "service": "logs.noisy"}).json()
            lines: list[dict[str, Any]] = answer["lines"]
            return lines

        assert [x["cid"] for x in eventually(since)] == [cid]  # type: ignore[union-attr]
        warnings = admin.get("/splice/admin/logs", params={"level": "WARNING", "q": "noisy says"}).json()["lines"]
        assert cid in [x["cid"] for x in warnings]
        errors = admin.get("/splice/admin/logs", params={"level": "ERROR", "q": "noisy says"}).json()["lines"]
        assert errors == []
        actions = admin.get("/splice/admin/logs", params={"q": "admin action"}).json()["lines"]
        assert "admin action: dashboard:ann POST /splice/admin/deploy -> 200" in [x["message"] for x in actions]
        assert all(x["logger"] == "splice.admin" for x in actions)

        refused = admin.get("/splice/admin/logs", params={"level": "LOUD"})
        assert refused.status_code == 400
        assert refused.json()["error"]["problems"][0]["field"] == "level"
