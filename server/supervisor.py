"""The supervisor of a server of several worker processes (``[[servers]] workers = N``).

``splice server run DIR --server S`` becomes this small process when S has more than one worker: it starts
``python -m splice.server.cli server run DIR --server S --worker K`` for K = 1..N, forwards SIGTERM and SIGINT to
them, restarts one that ends when nobody asked it to (after a back-off: ``FIRST_BACKOFF`` doubling to
``MAX_BACKOFF``, reset once a worker ran ``STEADY`` seconds), and ends once stopping and every worker ended. A worker
that ends before it ever took requests (a wrong configuration, its port held by another program) stops the server
with exit status 1, as a server of one process would end, instead of being started again for ever. The
workers share the server's port (each binds it with ``SO_REUSEPORT``), so a load balancer still sees one server;
each is a cluster member of its own (``server1.w2``).

It imports nothing of the runtime (no Starlette, SQLAlchemy, services): it stays small, and a fault in the
runtime cannot take it down. It logs to ``<server dir>/logs/server.log``; each worker logs to its own
``<server dir>/workers/<K>/logs/server.log``. The pid file (``splice start``) names this process, so ``splice stop``
stops the whole server.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .logs import configure_server_logging, to_stdout

if TYPE_CHECKING:
    from .settings import ServerSettings, Settings

logger = logging.getLogger(__name__)

GRACE = 5.0
"""Seconds a stopping server waits for the calls under way (HTTP requests, then background calls) to end."""
HARD_STOP = GRACE + 7.0
"""Seconds after SIGTERM when a server that has still not ended exits anyway (``splice stop`` kills at 15 s)."""

FIRST_BACKOFF = 0.1
"""Seconds before a worker that ended unexpectedly starts again; doubled at each further end, up to ``MAX_BACKOFF``."""
MAX_BACKOFF = 5.0
STEADY = 10.0
"""A worker that ran this long before it ended starts again after ``FIRST_BACKOFF`` (its back-off starts over)."""
WORKER_FILE = "worker.json"
"""What a worker writes in its process directory once it takes requests: ``{"worker", "pid", "url", "ready_at"}``."""


def describe_exit(status: int) -> str:
    """``exit status 1``, ``killed by SIGKILL``: how a worker ended, from ``Popen.returncode``."""
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _end_with_parent() -> None:
    """In a worker, before it runs: SIGTERM it if the supervisor dies (``kill -9``), so no worker is left behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)


@dataclass
class _Worker:
    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    due: float = 0.0
    """When to start it again (``time.monotonic()``), while ``process`` is ``None``."""
    restarts: int = 0
    ready: bool = False
    """It took requests once (wrote its ``WORKER_FILE``) since the supervisor started."""


class Supervisor:
    """Starts the workers of one server, restarts those that die, stops them all on SIGTERM/SIGINT."""

    def __init__(self, settings: Settings, server: ServerSettings, grace: float, hard_stop: float) -> None:
        self.settings = settings
        self.server = server
        self.grace = grace
        self.hard_stop = hard_stop
        self.workers = [_Worker(k) for k in range(1, server.workers + 1)]
        self._stopping: float | None = None
        self._signal: int = signal.SIGTERM
        self._failed = False
        """A worker ended before it ever took requests (a wrong configuration, the ODB out of reach): the server
        stops, as a server of one process would, instead of trying again for ever."""
        self._wake = threading.Event()

    def command(self, worker: int) -> list[str]:
        directory = str(self.settings.directory)
        return [sys.executable, "-m", "splice.server.cli", "server", "run", directory, "--server", self.server.name,
                "--worker", str(worker)]  # fmt: skip

    def _process_dir(self, worker: _Worker) -> Path:
        return self.settings.process_dir(replace(self.server, worker=worker.number))

    def _start(self, worker: _Worker) -> None:
        process_dir = self._process_dir(worker)
        (process_dir / "logs").mkdir(parents=True, exist_ok=True)
        (process_dir / WORKER_FILE).unlink(missing_ok=True)  # written again once this process takes requests
        console = process_dir / "logs" / "console.log"
        with contextlib.ExitStack() as stack:
            # Logs to standard output (a container's log: $SPLICE_LOG_STDOUT): the workers write there too.
            output = None if to_stdout(console) else stack.enter_context(open(console, "ab"))
            worker.process = subprocess.Popen(
                self.command(worker.number),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=process_dir,
                preexec_fn=_end_with_parent,
            )
        worker.started = time.monotonic()
        logger.info("server %s: worker %s started (pid %s)", self.server.name, worker.number, worker.process.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._stopping is None:
            self._stopping = time.monotonic()
            self._signal = signum
        self._wake.set()

    def run(self) -> int:
        """Run until stopped and every worker ended; 0, or 1 if the workers had to be killed."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for worker in self.workers:
            self._start(worker)
        logger.info("server %s: %s workers on %s", self.server.name, len(self.workers), self.server.url)
        forwarded = False
        killed = False
        while True:
            now = time.monotonic()
            if self._stopping is not None and not forwarded:
                forwarded = True
                logger.info("server %s: stopping its workers", self.server.name)
                self._signal_all(self._signal)
            if self._stopping is not None and not killed and now - self._stopping > self.hard_stop:
                killed = True
                why = "server %s: workers still running %g s after the stop: killing them"
                logger.error(why, self.server.name, self.hard_stop)
                self._signal_all(signal.SIGKILL)
            running = self._reap(now)
            if self._stopping is not None and not running:
                logger.info("server %s stopped", self.server.name)
                return 1 if killed or self._failed else 0
            if self._stopping is None:
                self._restart_due(now)
            self._wake.wait(0.05)
            self._wake.clear()

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _reap(self, now: float) -> int:
        """Note the workers that ended (and when to start them again); how many still run."""
        running = 0
        for worker in self.workers:
            process = worker.process
            if process is None:
                continue
            status = process.poll()
            if status is None:
                running += 1
                worker.ready = worker.ready or (self._process_dir(worker) / WORKER_FILE).exists()
                continue
            worker.process = None
            if self._stopping is not None:
                logger.info("server %s: worker %s ended (%s)", self.server.name, worker.number, describe_exit(status))
                continue
            if not worker.ready:
                self._give_up(worker, process.pid, status, now)
                continue
            if now - worker.started >= STEADY:
                worker.backoff = FIRST_BACKOFF
            worker.due = now + worker.backoff
            logger.error(
                "server %s: worker %s (pid %s) ended unexpectedly (%s); starting it again in %.1f s",
                self.server.name,
                worker.number,
                process.pid,
                describe_exit(status),
                worker.backoff,
            )
            worker.backoff = min(worker.backoff * 2, MAX_BACKOFF)
        return running

    def _give_up(self, worker: _Worker, pid: int, status: int, now: float) -> None:
        console = self._process_dir(worker) / "logs" / "console.log"
        try:
            said = "".join(console.read_text(errors="replace").splitlines(keepends=True)[-15:]).rstrip()
        except OSError:
            said = "(no console output)"
        logger.error(
            "server %s: worker %s (pid %s) ended (%s) before it took requests; stopping the server. Its output "
            "(%s):\n%s",
            self.server.name,
            worker.number,
            pid,
            describe_exit(status),
            console,
            said,
        )
        self._failed = True
        self._stopping = now

    def _restart_due(self, now: float) -> None:
        for worker in self.workers:
            if worker.process is None and now >= worker.due:
                worker.restarts += 1
                self._start(worker)


def supervise(settings: Settings, server: ServerSettings, grace: float, hard_stop: float) -> int:
    """Run ``server``'s workers until SIGTERM or SIGINT (what ``splice server run`` does for a server of several)."""
    return Supervisor(settings, server, grace, hard_stop).run()


def run_supervisor(settings: Settings, server: ServerSettings) -> int:
    """``splice server run`` of a server of several workers: log to the server's ``logs/server.log``, then
    ``supervise`` until stopped; the exit status."""

    log_file = settings.server_dir(server.name) / "logs" / "server.log"
    configure_server_logging(log_file, settings.log_level, settings.logs)
    try:
        return supervise(settings, server, GRACE, HARD_STOP)
    finally:
        logging.shutdown()


def worker_file(settings: Settings, server: ServerSettings, worker: int) -> Path:
    """Where worker ``worker`` of ``server`` says it is ready (``WORKER_FILE`` in its process directory)."""
    return settings.process_dir(replace(server, worker=worker)) / WORKER_FILE


__all__ = [
    "FIRST_BACKOFF",
    "GRACE",
    "HARD_STOP",
    "MAX_BACKOFF",
    "WORKER_FILE",
    "Supervisor",
    "describe_exit",
    "run_supervisor",
    "supervise",
    "worker_file",
]
