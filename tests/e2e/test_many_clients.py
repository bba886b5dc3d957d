"""A thousand connections and slow clients against a real server (``splice start``): issue 19 found these pass and
asked that they keep passing. While 1,000 connections are open (half idle, half stuck in the middle of their
request headers), other clients are answered; a client that sends its request a few bytes at a time gets its
answer; the server closes the connections that never finish a request (Hypercorn's keep-alive timeout, 5 s), so
a slow client cannot hold a socket for good, and it holds no more sockets than before."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import Cluster, eventually, splice

OPEN = 1_000


def server_pid(cluster: Cluster) -> int:
    status = json.loads(splice("status", str(cluster.directory), "--json").stdout)
    pid = status["servers"][0]["pid"]
    assert isinstance(pid, int)
    return pid


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:  # closed while we looked
            continue
    return count


def connections(port: int, count: int) -> Iterator[socket.socket]:
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if i % 2:  # half of them stop in the middle of their headers, as a slow client does
            sock.sendall(b"GET /splice/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow")
        yield sock


def closed_by_the_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:  # open, nothing said
        return False
    except ConnectionResetError:
        return True


def test_a_thousand_open_connections_and_slow_clients_leave_the_server_answering_others(cluster: Cluster) -> None:
    port = int(cluster.url.rsplit(":", 1)[1])
    pid = server_pid(cluster)
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        assert client.get("/splice/ping").status_code == 200
    before = sockets_of(pid)

    held = list(connections(port, OPEN))
    try:
        eventually(lambda: sockets_of(pid) >= before + OPEN // 2)  # the server holds them (it closes them later)
        with httpx.Client(base_url=cluster.url, timeout=10) as client:
            assert [client.get("/splice/ping").status_code for _ in range(20)] == [200] * 20
            listed = client.get("/splice/admin/modules", headers={"Authorization": f"Bearer {cluster.token}"})
            assert listed.status_code == 200

        # A client that sends its request a few bytes at a time is answered once the request is whole.
        request = b"GET /splice/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            for start in range(0, len(request), 7):
                slow.sendall(request[start : start + 7])
                time.sleep(0.01)  # the gaps between a slow client's writes, not a wait for a condition
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]

        # Those that never finish a request, idle or halfway through their headers, are closed by the server.
        still_open = set(held)

        def all_closed() -> bool:
            still_open.difference_update([sock for sock in still_open if closed_by_the_server(sock)])
            return not still_open

        eventually(all_closed, 60)
        eventually(lambda: sockets_of(pid) <= before + 2)
    finally:
        for sock in held:
            sock.close()
    with httpx.Client(base_url=cluster.url, timeout=10) as client:
        assert client.get("/splice/ping").status_code == 200
