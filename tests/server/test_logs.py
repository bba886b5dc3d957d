"""Observability on a real server in this process: JSON log lines (with the cid and the trace id), what the admin
logs endpoint reads of them, the access log, and W3C trace context passed on to a real upstream."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from splice.server.cli.cluster import quickstart_create
from splice.server.core import tracing
from splice.server.logs import configure_server_logging
from tests.conftest import InProcess, free_port, in_process
from tests.e2e.upstream import Upstream, upstream

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
SERVICES = textwrap.dedent(
    """
    import logging

    from splice.server import Service

    class Talk(Service):
        name = "obs.talk"

        def handle(self):
            self.logger.info("talking about %s", self.request.payload["about"])
            try:
                raise ValueError("on purpose")
            except ValueError:
                self.logger.exception("and failing")
            self.response.payload = {"cid": self.cid}

    class Call(Service):
        name = "obs.call"

        def handle(self):
            self.response.payload = self.out.rest["up"].get("/tag.txt").text
    """
)


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Puts the test process's logging back as it was (``configure_server_logging`` replaces the root's)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    access = logging.getLogger("splice.access").level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("splice.access").setLevel(access)


async def _server(tmp_path: Path, logs: str) -> AsyncIterator[InProcess]:
    directory = tmp_path / "cluster"
    await asyncio.to_thread(quickstart_create, directory, free_port(), None, None, 1, None, False)
    with (directory / "cluster.toml").open("a") as toml:
        toml.write(f"\n[logs]\n{logs}\n")
    async with in_process(directory) as made:
        deployed = await made.admin.post(
            "/splice/admin/deploy", json={"modules": [{"path": "obs.py", "source": SERVICES}]}
        )
        assert deployed.status_code == 200, deployed.text
        for name in ("talk", "call"):
            channel = {"name": name, "path": f"/{name}", "service": f"obs.{name}", "methods": ["POST"]}
            assert (await made.admin.post("/splice/admin/channels", json=channel)).status_code == 201
        yield made


@pytest.fixture
async def json_server(tmp_path: Path, root_logging: None) -> AsyncIterator[InProcess]:
    async for made in _server(tmp_path, 'format = "json"\naccess = true'):
        yield made


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_json_lines_carry_cid_trace_server_and_exception_and_the_logs_endpoint_reads_them(
    json_server: InProcess,
) -> None:
    runtime: Any = json_server.runtime
    log = runtime.settings.server_dir("server1") / "logs" / "server.log"
    configure_server_logging(log, "INFO", runtime.settings.logs)
    answer = await json_server.client.post("/talk", json={"about": "x"}, headers={"traceparent": TRACEPARENT})
    cid = answer.json()["cid"]
    mine = [line for line in _lines(log) if line["cid"] == cid]
    talking = next(line for line in mine if line["message"] == "talking about x")
    assert talking["level"] == "INFO"
    assert talking["logger"] == "splice.service.obs.talk"
    assert talking["server"] == "server1"
    assert talking["trace_id"] == TRACE
    assert isinstance(talking["process"], int)
    assert talking["time"].endswith("+00:00")
    failing = next(line for line in mine if line["message"] == "and failing")
    assert "ValueError: on purpose" in failing["exception"]
    access = next(line for line in mine if line["logger"] == "splice.access")
    assert access | {"duration_ms": 0} == access | {
        "method": "POST",
        "path": "/talk",
        "status": 200,
        "duration_ms": 0,
        "bytes": len(answer.content),
        "client": "127.0.0.1:123",
        "trace_id": TRACE,
    }

    read = await json_server.admin.get("/splice/admin/logs", params={"cid": cid})
    assert read.status_code == 200, read.text
    lines = read.json()["lines"]
    assert [line["message"].splitlines()[0] for line in lines if line["service"] == "obs.talk"] == [
        "talking about x",
        "and failing",
    ]
    assert "ValueError: on purpose" in lines[1]["message"]


async def test_access_lines_leave_the_query_string_out(json_server: InProcess) -> None:
    runtime: Any = json_server.runtime
    log = runtime.settings.server_dir("server1") / "logs" / "server.log"
    configure_server_logging(log, "WARNING", runtime.settings.logs)  # the access log does not follow the level
    await json_server.client.post("/talk?api_key=s3cr3t-key", json={"about": "y"})
    access = [line for line in _lines(log) if line["logger"] == "splice.access"]
    assert [(line["path"], line["status"]) for line in access] == [("/talk", 200)]
    assert "s3cr3t-key" not in log.read_text()


async def test_the_trace_goes_on_to_an_outgoing_rest_call_with_a_new_span(json_server: InProcess) -> None:
    with upstream("tagged") as up:
        body = {"name": "up", "kind": "rest", "address": up.url}
        assert (await json_server.admin.post("/splice/admin/outgoing", json=body)).status_code == 201
        answer = await json_server.client.post(
            "/call", json={}, headers={"traceparent": TRACEPARENT, "tracestate": "a=1"}
        )
        assert answer.status_code == 200, answer.text
        untraced = await json_server.client.post("/call", json={})
        assert untraced.status_code == 200, untraced.text
        seen = _received(up)
    version, trace_id, span, flags = seen[0]["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE, "01")
    assert span not in ("00f067aa0ba902b7", "0" * 16)
    assert seen[0]["tracestate"] == "a=1"
    assert "traceparent" not in seen[1]  # no trace came and OpenTelemetry is not configured: none is invented


def _received(up: Upstream) -> list[dict[str, str]]:
    return [{k.lower(): v for k, v in s.headers.items()} for s in up.wait_for("/tag.txt", 2)]


@pytest.mark.parametrize(
    ("header", "valid"),
    [
        (TRACEPARENT, True),
        (f"01-{TRACE}-00f067aa0ba902b7-01-future", True),
        (f"00-{TRACE}-00f067aa0ba902b7-01-extra", False),
        (f"ff-{TRACE}-00f067aa0ba902b7-01", False),
        (f"00-{'0' * 32}-00f067aa0ba902b7-01", False),
        (f"00-{TRACE}-{'0' * 16}-01", False),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-01", False),
        ("garbage", False),
    ],
)
def test_only_a_valid_traceparent_is_taken(header: str, valid: bool) -> None:
    assert (tracing.parse(header) is not None) is valid


def test_server_run_logs_json_lines_to_stdout(tmp_path: Path) -> None:
    """What a container does: ``splice server run --log-format json --log-stdout``; nothing goes to the file."""
    directory = tmp_path / "cluster"
    quickstart_create(directory, free_port(), None, None, 1, None, False)
    command = [sys.executable, "-m", "splice.server.cli", "server", "run", str(directory), "--server", "server1"]
    command += ["--log-format", "json", "--log-stdout"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            first = process.stdout.readline()  # blocks until the server logs (it does as it starts), or it exits
        finally:
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=30)
    assert first, errors
    line = json.loads(first)
    assert {"time", "level", "logger", "message", "cid", "server", "process"} <= line.keys()
    assert line["process"] == process.pid
    assert not (directory / "server1" / "logs" / "server.log").exists()


OTEL = textwrap.dedent(
    """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from splice.server.core import tracing

    assert tracing.enter([]) is None  # installed, but no provider set: no trace is invented
    trace.set_tracer_provider(TracerProvider())
    assert tracing.enter([]) is not None  # configured: a new trace
    with trace.get_tracer("test").start_as_current_span("outer") as span:
        token = tracing.enter([])  # a current span: its trace
        assert tracing.current_trace_id() == f"{span.get_span_context().trace_id:032x}"
        tracing.leave(token)
        token = tracing.enter([(b"traceparent", b"00-%s-00f067aa0ba902b7-01")])  # what the request brings wins
        assert tracing.current_trace_id() == "%s"
    print("ok")
    """
)


def test_opentelemetry_starts_or_joins_a_trace_only_when_configured() -> None:
    pytest.importorskip("opentelemetry.sdk.trace")
    # In a process of its own: OpenTelemetry's tracer provider can be set once per process.
    done = subprocess.run([sys.executable, "-c", OTEL % (TRACE, TRACE)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
