"""A small Debug Adapter Protocol client (standard library only) for the tests: what an editor does.

It speaks DAP over TCP (``Content-Length`` framed JSON), keeps every event it receives, and follows the
sequence editors use to attach: ``initialize`` -> ``attach`` -> wait for the ``initialized`` event ->
``setBreakpoints`` -> ``configurationDone`` -> the ``attach`` response. Breakpoints are named by local
paths; the debuggee maps them through the ``pathMappings`` given to ``attach``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any


class DapError(Exception):
    pass


class DapClient:
    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.settimeout(None)
        self._seq = 0
        self._lock = threading.Condition()
        self._responses: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._seen = 0
        self.closed = False
        self._reader = threading.Thread(target=self._read, name="dap-reader", daemon=True)
        self._reader.start()

    # -- the wire ---------------------------------------------------------------------------------------

    def _read(self) -> None:
        stream = self._sock.makefile("rb")
        try:
            while True:
                length = 0
                while True:
                    line = stream.readline()
                    if not line:
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                message = json.loads(stream.read(length))
                with self._lock:
                    if message.get("type") == "response":
                        self._responses[message["request_seq"]] = message
                    elif message.get("type") == "event":
                        self._events.append(message)
                    self._lock.notify_all()
        except (OSError, ValueError):
            return
        finally:
            with self._lock:
                self.closed = True
                self._lock.notify_all()

    def send(self, command: str, arguments: Mapping[str, Any] | None = None) -> int:
        with self._lock:
            self._seq += 1
            seq = self._seq
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        body = json.dumps(message).encode()
        self._sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return seq

    def response(self, seq: int, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while seq not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise DapError(f"no response to request {seq} (closed: {self.closed})")
                self._lock.wait(left)
            answer = self._responses.pop(seq)
        if not answer.get("success"):
            raise DapError(f"{answer.get('command')} failed: {answer.get('message')} {answer.get('body')}")
        return answer

    def request(self, command: str, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its response's ``body``."""
        body: dict[str, Any] = self.response(self.send(command, arguments)).get("body") or {}
        return body

    def event(self, name: str, timeout: float | None = None) -> dict[str, Any]:
        """The next ``name`` event not returned before (waits for it)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while True:
                for index in range(self._seen, len(self._events)):
                    if self._events[index]["event"] == name:
                        self._seen = index + 1
                        body: dict[str, Any] = self._events[index].get("body") or {}
                        return body
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    raise DapError(f"no '{name}' event (closed: {self.closed})")
                self._lock.wait(left)

    def wait_closed(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._lock:
            while not self.closed and time.monotonic() < deadline:
                self._lock.wait(deadline - time.monotonic())
            return self.closed

    # -- what an editor does --------------------------------------------------------------------------

    def attach(
        self,
        path_mappings: Sequence[Mapping[str, str]],
        breakpoints: Mapping[str, Sequence[int]],
        just_my_code: bool = True,
        options: Mapping[str, Any] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """Attach and set ``breakpoints`` (local file -> lines); answers each file's verified breakpoints."""
        self.request(
            "initialize",
            {
                "clientID": "splice-tests",
                "adapterID": "debugpy",
                "pathFormat": "path",
                "linesStartAt1": True,
                "columnsStartAt1": True,
            },
        )
        arguments = {"pathMappings": list(path_mappings), "justMyCode": just_my_code, **(options or {})}
        attach = self.send("attach", arguments)
        self.event("initialized")
        verified = {file: self.set_breakpoints(file, lines) for file, lines in breakpoints.items()}
        self.request("configurationDone")
        self.response(attach)
        return verified

    def set_breakpoints(self, file: str, lines: Sequence[int]) -> list[dict[str, Any]]:
        body = self.request("setBreakpoints", {"source": {"path": file}, "breakpoints": [{"line": n} for n in lines]})
        found: list[dict[str, Any]] = body.get("breakpoints", [])
        return found

    def locals_of_top_frame(self, thread_id: int) -> dict[str, str]:
        """The top frame's local variables (name -> value as the debugger shows it) and its source path."""
        frames = self.request("stackTrace", {"threadId": thread_id, "startFrame": 0, "levels": 1})["stackFrames"]
        top = frames[0]
        scopes = self.request("scopes", {"frameId": top["id"]})["scopes"]
        local = next(s for s in scopes if s["name"].lower().startswith("locals"))
        variables = self.request("variables", {"variablesReference": local["variablesReference"]})["variables"]
        out = {v["name"]: v["value"] for v in variables}
        out["<source>"] = top["source"].get("path", "")
        out["<line>"] = str(top["line"])
        return out

    def resume(self, thread_id: int) -> None:
        self.request("continue", {"threadId": thread_id})

    def disconnect(self) -> None:
        with contextlib.suppress(OSError, DapError):
            self.response(self.send("disconnect", {"terminateDebuggee": False}), timeout=5)
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


@contextlib.contextmanager
def attached(
    host: str,
    port: int,
    path_mappings: Sequence[Mapping[str, str]],
    breakpoints: Mapping[str, Sequence[int]],
    options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[DapClient, dict[str, list[dict[str, Any]]]]]:
    """Attach as an editor does (``options``: more attach arguments, as a launch.json configuration has them)."""
    client = DapClient(host, port)
    try:
        yield client, client.attach(path_mappings, breakpoints, options=options)
    finally:
        client.disconnect()


def greet_as_pycharm(connection: socket.socket) -> None:
    """Play PyCharm's debug server to a process that connected to it (``pydevd_pycharm.settrace``): answer its
    version request, then send CMD_RUN, what the IDE sends once its breakpoints are set."""
    connection.settimeout(10)
    connection.sendall(b"501\t1\t1.1\tUNIX\tID\n")
    answer = b""
    while b"\n" not in answer:
        answer += connection.recv(4096)
    assert answer.startswith(b"501\t1\t")
    connection.sendall(b"101\t3\t\n")
