"""The HAProxy load balancer in front of a cluster's servers: its configuration and its process.

``render()`` is a pure function of the settings: round robin over every server, health checks against
``/splice/ping``, a monitor URI answering while HAProxy itself lives, and JSON bodies for the errors
HAProxy makes itself (503 when no server is up). The rest runs HAProxy from ``DIR/load-balancer/``:
write and check the configuration, start it as a daemon, reload it without dropping a request, stop it.

A reload starts a new HAProxy with ``-sf`` (the old processes finish what they serve, then leave) and
``-x`` (the new one takes the listening sockets over from the old one through its stats socket, so no
connection waiting to be accepted is refused). ``option idle-close-on-response`` keeps an idle
keep-alive client's connection open during that hand-over until its next request, which is answered
with ``Connection: close``, instead of closing it under the client's feet.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, LoadBalancerSettings, Settings
from ..core.errors import ConfigError, SpliceError

LB_DIR = "load-balancer"
MONITOR_URI = "/haproxy/alive"
HEALTH_CHECK = "GET /splice/ping"
_SOCKET = "haproxy.sock"
"""Relative to ``DIR/load-balancer`` (HAProxy's working directory): a unix socket path holds only 107 bytes."""

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:@+,=~%")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
_ERRORS = {
    200: ("ok", "HAProxy is alive"),  # the monitor URI's answer
    502: ("bad_gateway", "the server closed the connection without answering"),
    503: ("no_server", "no server of the cluster is up"),
    504: ("gateway_timeout", "the server did not answer in time"),
    413: ("too_large", "the request body is larger than any endpoint of the cluster accepts"),
}


class LoadBalancerError(SpliceError):
    """HAProxy is missing, refused its configuration, or did not start or stop."""

    code = "load_balancer"


# -- the configuration (pure) -----------------------------------------------------------------------------------


def _word(value: str) -> str:
    """``value`` as one HAProxy configuration word: anything but plain characters becomes ``\\xNN``."""
    return "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in value.encode()) or '""'


def _address(host: str, port: int) -> str:
    return _word(f"ipv6@{host}:{port}" if ":" in host else f"{host}:{port}")


def _body(status: int, largest: int) -> str:
    code, message = _ERRORS[status]
    message = f"{message} ({largest} bytes)" if status == 413 else message
    value = {"status": "ok", "component": "haproxy"} if status == 200 else {"error": {"code": code, "message": message}}
    return json.dumps(value)  # no single quote in it: safe inside HAProxy's strong quotes


def render(settings: Settings) -> str:
    """The text of ``haproxy.cfg`` for ``settings``; raises ``ConfigError`` if a name cannot go into it."""
    balancer = settings.load_balancer
    file = str(settings.directory / CONFIG_FILE)
    if balancer is None:
        raise ConfigError(file, "no [load_balancer] section ('splice create load-balancer DIR' adds one)")
    for server in settings.servers:
        if not server.name or not set(server.name) <= _NAME_CHARS:
            message = f"'{server.name}' cannot name an HAProxy server: use letters, digits, '-', '_', '.' or ':'"
            raise ConfigError(file, message, f"servers[{server.index}].name")
    comment = "".join(c if c.isprintable() else "?" for c in settings.cluster_name)
    largest = largest_body(settings)
    lines = [
        f"# HAProxy in front of Splice cluster {comment}: generated from {CONFIG_FILE}",
        "# by 'splice create load-balancer' and 'splice start'; edits here are overwritten.",
        "global",
        f"    pidfile {_word(str(pid_file(settings.directory)))}",
        f"    stats socket unix@{_SOCKET} mode 600 level admin expose-fd listeners",
        "    hard-stop-after 30s",
        "",
        "defaults",
        "    mode http",
        "    option idle-close-on-response",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 120s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    timeout tunnel 1h",  # a WebSocket, once upgraded: idle up to this long, not timeout client/server
        "    timeout queue 10s",
        "    timeout check 2s",  # a slow answer to a check is not a failed one: checks come every 500 ms
        "    retries 3",
        "    option redispatch 1",
        *(
            f"    http-error status {status} content-type application/json string '{_body(status, largest)}'"
            for status in _ERRORS
        ),
        "",
        "frontend splice",
        f"    bind {_address(balancer.host, balancer.port)}",
        f"    monitor-uri {MONITOR_URI}",
        "    option forwardfor",
        # A body no endpoint takes is refused here, from its Content-Length and before any of it is read (and
        # before "100 Continue"); a server refusing one while it still streams in may reset the connection.
        f"    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {largest} }}",
        "    default_backend servers",
        "",
        "backend servers",
        "    balance roundrobin",
        f"    option httpchk {HEALTH_CHECK}",
        "    http-check expect status 200",
        "    default-server inter 500ms fall 2 rise 1",
        *(f"    server {s.name} {_address(s.host, s.port)} check" for s in settings.servers),
    ]
    return "\n".join(lines) + "\n"


def largest_body(settings: Settings) -> int:
    """The largest request body any endpoint of the cluster's servers accepts: a REST or JSON-RPC channel's, or an
    admin operation's (a deploy's grows with ``deploy.max_module_bytes``)."""
    from ..http import channels, operations

    sizes = [channels.MAX_BODY, operations.MAX_BODY]
    # The admin API's limits per operation (http/operations.py, LIMITS and DEPLOY_FACTOR), where that module has them.
    sizes += [limit for limit in getattr(operations, "LIMITS", {}).values() if isinstance(limit, int)]
    sizes.append(int(getattr(operations, "DEPLOY_FACTOR", 1)) * settings.max_module_bytes)
    return max(sizes)


def monitor_url(balancer: LoadBalancerSettings) -> str:
    """Where to ask whether HAProxy lives (a wildcard bind is asked on the loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(balancer.host, balancer.host)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{balancer.port}{MONITOR_URI}"


# -- files and processes ------------------------------------------------------------------------------------------


def lb_dir(directory: Path) -> Path:
    return directory / LB_DIR


def config_file(directory: Path) -> Path:
    return lb_dir(directory) / "haproxy.cfg"


def pid_file(directory: Path) -> Path:
    return lb_dir(directory) / "haproxy.pid"


def _draining_file(directory: Path) -> Path:
    """Pids of HAProxy processes replaced by a reload, which may still finish requests."""
    return lb_dir(directory) / "draining.pids"


def find_haproxy() -> str | None:
    """The ``haproxy`` program; Debian puts it in ``/usr/sbin``, which a user's ``PATH`` often lacks."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def _haproxy() -> str:
    found = find_haproxy()
    if found is None:
        raise LoadBalancerError("haproxy is not installed (apt-get install haproxy)")
    return found


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # HAProxy's daemon closes the inherited stdout and stderr, so reading them ends when the command does.
    return subprocess.run(
        [_haproxy(), *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        start_new_session=True,
    )


def _alerts(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "[ALERT]" in line or "[WARNING]" in line]
    return "\n".join(lines or stderr.strip().splitlines()[-5:])


def write_config(settings: Settings) -> bool:
    """Write ``haproxy.cfg`` (checked with ``haproxy -c`` when HAProxy is installed); whether it changed."""
    target = config_file(settings.directory)
    text = render(settings)
    with contextlib.suppress(FileNotFoundError):
        if target.read_text(encoding="utf-8") == text:
            return False
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate = target.with_name("haproxy.cfg.new")
    candidate.write_text(text, encoding="utf-8")
    if find_haproxy() is not None:
        checked = _run(["-c", "-q", "-f", str(candidate)], target.parent)
        if checked.returncode != 0:
            candidate.unlink()
            raise LoadBalancerError(f"HAProxy refuses the generated configuration:\n{_alerts(checked.stderr)}")
    os.replace(candidate, target)
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (a daemon exited, not yet reaped by init) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _ours(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is an HAProxy of this cluster (a pid in a stale file may belong to anything now)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config_file(directory)).encode() in args and _alive(pid)


def _pids(path: Path) -> list[int]:
    try:
        return [int(word) for word in path.read_text().split() if word.isdigit()]
    except FileNotFoundError:
        return []


def running_pids(directory: Path) -> list[int]:
    """The HAProxy processes of the current configuration (one, unless ``nbproc`` says otherwise)."""
    return [pid for pid in _pids(pid_file(directory)) if _ours(pid, directory)]


def _draining(directory: Path) -> list[int]:
    return [pid for pid in _pids(_draining_file(directory)) if _ours(pid, directory)]


def healthy(balancer: LoadBalancerSettings, timeout: float = 1.0) -> bool:
    """Whether HAProxy answers its monitor URI with 200."""
    try:
        with urllib.request.urlopen(monitor_url(balancer), timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _port_taken(balancer: LoadBalancerSettings) -> bool:
    host = monitor_url(balancer).split("//", 1)[1].rsplit(":", 1)[0].strip("[]")
    try:
        with socket.create_connection((host, balancer.port), timeout=0.5):
            return True
    except OSError:
        return False


def _stale(directory: Path) -> bool:
    """Whether the configuration changed since HAProxy started (it writes its pid file after reading it)."""
    try:
        return config_file(directory).stat().st_mtime_ns >= pid_file(directory).stat().st_mtime_ns
    except FileNotFoundError:
        return True


def _launch(settings: Settings, old: Iterable[int]) -> None:
    directory = settings.directory
    old = list(old)
    base = ["-f", str(config_file(directory)), "-p", str(pid_file(directory)), "-D"]
    result = _run([*base, *(["-x", _SOCKET, "-sf", *map(str, old)] if old else [])], lb_dir(directory))
    if result.returncode != 0 and old:
        # The old process's socket is gone or refuses: take new sockets (SO_REUSEPORT lets both listen).
        result = _run([*base, "-sf", *map(str, old)], lb_dir(directory))
    if result.returncode != 0:
        raise LoadBalancerError(f"HAProxy did not start:\n{_alerts(result.stderr)}")
    if old:
        keep = [pid for pid in [*_draining(directory), *old] if _ours(pid, directory)]
        _draining_file(directory).write_text("".join(f"{pid}\n" for pid in keep))


def _wait_healthy(balancer: LoadBalancerSettings, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(balancer, 0.5):
        if time.monotonic() > deadline:
            raise LoadBalancerError(f"HAProxy did not answer {monitor_url(balancer)} within {timeout:g} s")
        time.sleep(0.005)  # a refused probe costs ~0.1 ms: asking often makes 'splice start' return sooner


def start(settings: Settings, timeout: float = 10.0) -> dict[str, Any]:
    """Write the configuration and run HAProxy, or reload it if it runs and the configuration changed.

    Returns ``{name, url, pid, started, reloaded}`` once the monitor URI answers.
    """
    balancer = settings.load_balancer
    if balancer is None:
        raise ConfigError(str(settings.directory / CONFIG_FILE), "no [load_balancer] section")
    _haproxy()
    write_config(settings)
    old = running_pids(settings.directory)
    if not old and _port_taken(balancer):
        raise LoadBalancerError(f"{balancer.url} is already answering, but not as this cluster's HAProxy")
    reloading = bool(old) and _stale(settings.directory)
    if not old or reloading:
        _launch(settings, old)
    _wait_healthy(balancer, timeout)
    pids = running_pids(settings.directory)
    return {
        "name": "load-balancer",
        "url": balancer.url,
        "pid": pids[0] if pids else None,
        "started": not old,
        "reloaded": reloading,
    }


def reload(settings: Settings, timeout: float = 10.0) -> bool:
    """Regenerate the configuration and, if HAProxy runs, reload it without dropping requests; whether it did."""
    if settings.load_balancer is None:
        return False
    write_config(settings)
    old = running_pids(settings.directory)
    if not old or not _stale(settings.directory):
        return False
    _launch(settings, old)
    _wait_healthy(settings.load_balancer, timeout)
    return True


def stop(directory: Path, timeout: float = 10.0) -> list[int]:
    """Stop every HAProxy of this cluster, current and draining: softly (requests in flight finish), then not."""
    pids = [*running_pids(directory), *_draining(directory)]
    deadline = time.monotonic() + min(timeout, 5.0)
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        if not any(_alive(pid) for pid in pids):
            break
        deadline = time.monotonic() + 2.0
    pid_file(directory).unlink(missing_ok=True)
    _draining_file(directory).unlink(missing_ok=True)
    return pids


def start_if_configured(settings: Settings, timeout: float = 10.0) -> dict[str, Any] | None:
    """What ``splice start`` does after the servers answer: ``start()``, or say why not in ``error``."""
    if settings.load_balancer is None:
        return None
    if find_haproxy() is None:
        url = settings.load_balancer.url
        return {
            "name": "load-balancer",
            "url": url,
            "pid": None,
            "started": False,
            "error": f"haproxy is not installed (apt-get install haproxy): no load balancer on {url}, "
            "call the servers directly",
        }
    return start(settings, timeout)


def stop_if_configured(settings: Settings, timeout: float = 10.0) -> dict[str, Any] | None:
    """What ``splice stop`` does first: ``{name, stopped, pids}``, or ``None`` if there is no load balancer."""
    pids = stop(settings.directory, timeout)
    if settings.load_balancer is None and not pids:
        return None
    return {"name": "load-balancer", "stopped": bool(pids), "pids": pids}


def status(settings: Settings) -> dict[str, Any] | None:
    """``{url, pid, healthy}`` of the load balancer, or ``None`` when the cluster has none."""
    balancer = settings.load_balancer
    if balancer is None:
        return None
    pids = running_pids(settings.directory)
    return {"url": balancer.url, "pid": pids[0] if pids else None, "healthy": bool(pids) and healthy(balancer)}


__all__ = [
    "MONITOR_URI",
    "LoadBalancerError",
    "config_file",
    "find_haproxy",
    "healthy",
    "largest_body",
    "monitor_url",
    "reload",
    "render",
    "running_pids",
    "start",
    "start_if_configured",
    "status",
    "stop",
    "stop_if_configured",
    "write_config",
]
