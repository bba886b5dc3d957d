"""A small real HTTP upstream for outgoing-connection tests: a threaded stdlib server on a free loopback port.

It answers ``GET /tag.txt`` with its tag, holds ``GET /slow`` until ``release()`` (a call in flight for as long
as a test needs), and, when given a ``token``, answers 401 to any request without ``Authorization: Bearer
<token>``. Every request's path and headers are recorded, so a test can check what a connection sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Upstream:
    tag: str
    token: str | None = None
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        """Let every held ``/slow`` request (and any later one) answer."""
        self._released.set()

    def requests(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path == path]

    def wait_for(self, path: str, count: int = 1, seconds: float = 20.0) -> list[Seen]:
        """Poll until ``count`` requests for ``path`` arrived."""
        deadline = time.monotonic() + seconds
        while len(found := self.requests(path)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.tag}: {count} request(s) for {path} not seen within {seconds} s")
            time.sleep(0.02)
        return found

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        with self._lock:
            self.seen.append(Seen(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}))
        if self.token is not None and handler.headers.get("Authorization") != f"Bearer {self.token}":
            status, text = 401, "who are you?"
        elif handler.path == "/slow":
            self._released.wait(60)
            status, text = 200, f"slow from {self.tag}"
        elif handler.path in ("/tag.txt", "/private"):
            status, text = 200, self.tag
        elif handler.path == "/":
            status, text = 200, "up"
        else:
            status, text = 404, "no such thing"
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)


@contextmanager
def upstream(tag: str, token: str | None = None) -> Iterator[Upstream]:
    """An ``Upstream`` listening on 127.0.0.1 (a free port) for the block's duration."""
    made = Upstream(tag, token)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            made._answer(self, body=True)

        def do_HEAD(self) -> None:
            made._answer(self, body=False)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    made.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name=f"upstream-{tag}", daemon=True)
    thread.start()
    try:
        yield made
    finally:
        made.release()
        server.shutdown()
        server.server_close()
        thread.join(10)
