"""Restarting the servers of a cluster one at a time, none of them while it still gets requests.

What ``splice debug disable`` does with servers that listened with debugpy (which cannot stop listening but by a
restart). For each server in turn:

1. ask it to stop debugging: it drains (``/splice/ping`` answers 503, everything else is still served);
2. wait until the balancer took it out: this cluster's HAProxy shows it DOWN with no session under way (read
   from its stats socket), or, without an HAProxy of this cluster, ``drain`` seconds (an external balancer's
   check interval times its fall count);
3. ask it to restart now (``POST /splice/admin/debug/restart``), and wait until it answers again without
   the debugger, pings 200, and HAProxy has it UP again; only then the next server.

So the other servers answer meanwhile, and a client of the balancer sees no failed request.

A server of several workers (``[[servers]] workers``) stays in the balancer: ``restart_workers`` turns debugging
off in one worker at a time, at its private URL (from ``GET /splice/admin/cluster``), and waits until it serves
again (registered anew at a new private URL, not restarting) before the next: its siblings serve the port
meanwhile.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..client import AdminClient, ClientError, Unreachable, ping
from ..config import ServerSettings, Settings
from ..settings import split_member
from . import _haproxy

BALANCER_WAIT = 15.0
"""Seconds to wait for HAProxy to take a draining server out, or to put a restarted one back."""
BACK_WAIT = 60.0
"""Seconds to wait for a restarted server to answer again."""
POLL = 0.05


class Balancer:
    """This cluster's HAProxy as its stats socket shows it: each server's state and sessions under way."""

    def __init__(self, directory: Path) -> None:
        self.socket = _haproxy.lb_dir(directory) / _haproxy._SOCKET

    def available(self) -> bool:
        return self.stats() is not None

    def stats(self) -> dict[str, dict[str, str]] | None:
        """``show stat`` of the backend's servers by name (``status``, ``scur``...), or ``None`` if HAProxy does
        not answer."""
        try:
            raw = self._ask(b"show stat\n")
        except OSError:
            return None
        lines = raw.decode(errors="replace").splitlines()
        if not lines or not lines[0].startswith("# "):
            return None
        header = lines[0][2:].split(",")
        rows = (dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line)
        return {r["svname"]: r for r in rows if r.get("pxname") == "servers" and r["svname"] not in _AGGREGATES}

    def _ask(self, command: bytes) -> bytes:
        with _inside(self.socket.parent), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(self.socket.name)  # relative: a cluster's path may be longer than a socket path may be
            sock.sendall(command)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def out(self, name: str) -> bool:
        """Whether HAProxy sends ``name`` nothing new and nothing it sent is still under way."""
        row = (self.stats() or {}).get(name)
        if row is None:
            return True  # not a server of HAProxy's: nothing to drain there
        status = row.get("status", "")
        return (status.startswith("DOWN") or "MAINT" in status) and row.get("scur", "0") == "0"

    def up(self, name: str) -> bool:
        row = (self.stats() or {}).get(name)
        return row is None or row.get("status") == "UP"


_AGGREGATES = frozenset({"FRONTEND", "BACKEND"})


@contextlib.contextmanager
def _inside(directory: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def _until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def balancer_of(settings: Settings) -> Balancer | None:
    """This cluster's HAProxy, if it has one running."""
    if settings.load_balancer is None:
        return None
    balancer = Balancer(settings.directory)
    return balancer if balancer.available() else None


def restart_drained(
    client: AdminClient, server: ServerSettings, balancer: Balancer | None, drain: float, say: Callable[[str], None]
) -> None:
    """Restart ``server`` (already draining) once the balancer took it out; return once it serves again.

    Raises ``ClientError`` if it does not come back within ``BACK_WAIT`` seconds."""
    started = time.monotonic()
    if balancer is not None:
        if not _until(lambda: balancer.out(server.name), BALANCER_WAIT):
            say(f"{server.name}: HAProxy did not take it out within {BALANCER_WAIT:g} s; restarting it anyway")
    else:
        time.sleep(drain)  # no HAProxy of ours to ask: an external balancer's checks need this long
    try:
        client.call("POST", "/splice/admin/debug/restart")
    except Unreachable:
        pass  # it restarts on its own after its drain limit: maybe it is already doing so
    except ClientError as exc:
        if exc.status != 409:  # 409: not waiting any more (it restarted on its own)
            raise
    drained = time.monotonic() - started
    if not _until(lambda: _back(client, server), BACK_WAIT):
        raise ClientError(f"{server.name} did not answer again within {BACK_WAIT:g} s of its restart; see its log")
    if balancer is not None and not _until(lambda: balancer.up(server.name), BALANCER_WAIT):
        raise ClientError(f"{server.name} answers again, but HAProxy did not put it back within {BALANCER_WAIT:g} s")
    say(
        f"{server.name}: restarted without debugpy (drained in {drained:.1f} s, serving again after "
        f"{time.monotonic() - started:.1f} s{', back in HAProxy' if balancer is not None else ''})"
    )


def workers_of(client: AdminClient, server: ServerSettings) -> list[dict[str, Any]]:
    """The live members of ``server`` (its workers) as the cluster lists them (``name``, ``url``...), by worker."""
    rows = client.call("GET", "/splice/admin/cluster").get("servers", [])
    mine = [r for r in rows if r.get("live") and split_member(str(r["name"]))[0] == server.name]
    return sorted(mine, key=lambda r: split_member(str(r["name"]))[1] or 0)


def worker_label(member: str) -> str:
    """``server1.w2`` -> ``server1 worker 2``."""
    server, worker = split_member(member)
    return server if worker is None else f"{server} worker {worker}"


def restart_workers(client: AdminClient, server: ServerSettings, token: str, say: Callable[[str], None]) -> None:
    """Stop debugging in every worker of ``server`` (``client``: its shared URL), one at a time: a worker that
    listened with debugpy restarts, and the next one's turn comes once it serves again."""
    for row in workers_of(client, server):
        label = worker_label(str(row["name"]))
        worker = AdminClient(str(row["url"]), token, timeout=client.timeout)
        answer = worker.call("POST", "/splice/admin/debug", {"enabled": False})
        if not answer.get("restarting"):
            say(f"{label}: debugging off")
            continue
        say(f"{label}: debugging off; restarting without debugpy (the other workers serve meanwhile)")
        started = time.monotonic()
        try:
            worker.call("POST", "/splice/admin/debug/restart")
        except Unreachable:
            pass  # it restarts on its own after its drain limit: maybe it is already doing so
        except ClientError as exc:
            if exc.status != 409:
                raise
        if not _until(functools.partial(_worker_back, client, server, row, token), BACK_WAIT):
            raise ClientError(f"{label} did not serve again within {BACK_WAIT:g} s of its restart; see its log")
        say(f"{label}: restarted without debugpy (serving again after {time.monotonic() - started:.1f} s)")


def _worker_back(client: AdminClient, server: ServerSettings, before: dict[str, Any], token: str) -> bool:
    """Whether the worker ``before`` was registered anew (a new private URL) and answers, not restarting."""
    try:
        now = next((r for r in workers_of(client, server) if r["name"] == before["name"]), None)
        if now is None or (now["url"] == before["url"] and now.get("events_boot") == before.get("events_boot")):
            return False
        info = AdminClient(str(now["url"]), token, timeout=2.0).call("GET", "/splice/admin/debug")
    except ClientError:
        return False
    return not info.get("restarting")


def _back(client: AdminClient, server: ServerSettings) -> bool:
    """Whether the restarted process answers (no longer the old one waiting to restart) and pings 200."""
    try:
        info: dict[str, Any] = client.call("GET", "/splice/admin/debug")
    except ClientError:
        return False
    return not info.get("restarting") and ping(server.url, 1.0) is not None


__all__ = ["Balancer", "balancer_of", "restart_drained", "restart_workers", "worker_label", "workers_of"]
