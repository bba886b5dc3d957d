"""The isolation worker: imports candidate modules in a throw-away process.

Started once per server (``python -m splice.server.deploy._isolate_worker``) and kept warm with Splice
already imported. For each job it reads one JSON line on stdin, hands it to a child forked ahead of time
(``_Spare``), which imports the modules, and answers one JSON line on stdout. A child that does not finish in
time is killed, so a module whose import never returns, calls ``sys.exit()`` or crashes the interpreter cannot harm the
server; the worker itself stays single-threaded, which keeps ``fork()`` safe.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..core.store import describe, find_services
from .loader import UserModules, drop_working_directory_from_path

_RESULT_LIMIT = 64 * 1024 * 1024


def locate(exc: BaseException, finder: UserModules, fallback: str) -> dict[str, Any]:
    """Where in the user's files ``exc`` happened: the last frame that is one of the user's modules."""
    by_file = {str(finder.root / rel): rel for rel in finder.files.values()}
    line: int | None = None
    column: int | None = None
    path = fallback
    if isinstance(exc, SyntaxError) and exc.filename in by_file:
        path, line, column = by_file[exc.filename], exc.lineno, exc.offset
    else:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename in by_file:
                path, line = by_file[frame.filename], frame.lineno
    text = "".join(traceback.format_exception(exc)).replace(str(finder.root) + "/", "")
    message = f"{type(exc).__name__}: {exc}"
    return {"path": path, "line": line, "column": column, "message": message, "traceback": text}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    finder = UserModules(Path(job["root"]), job["files"])
    finder.overlay = dict(job["overlay"])
    finder.install()
    problems: list[dict[str, Any]] = []
    modules: dict[str, Any] = {}
    describe_names = set(job["describe"])
    libraries = set(job.get("libraries", ()))
    for name in job["check"]:
        relative = finder.files[name]
        try:
            module = importlib.import_module(name)
        except BaseException as exc:
            problems.append(locate(exc, finder, relative))
            continue
        if name not in describe_names:
            continue
        classes, bad = find_services(name, vars(module))
        problems.extend({"path": relative, "message": text, "class": text.split()[1].rstrip(":")} for text in bad)
        services = []
        for cls in classes:
            try:
                info = describe(cls, name, relative, 0, vars(module))
            except TypeError as exc:
                problems.append({"path": relative, "message": str(exc), "class": cls.__name__})
                continue
            services.append({"class": cls.__name__, **info.as_dict()})
        if not classes and name not in libraries:
            problems.append({"path": relative, "message": "defines no service (no subclass of splice.server.Service)"})
        modules[name] = {"services": services}
    return {"ok": not problems, "modules": modules, "problems": problems}


def _child(job: dict[str, Any], write_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    try:
        result = run_job(job)
    except BaseException as exc:
        result = {"ok": False, "modules": {}, "problems": [{"path": "", "message": f"isolation failed: {exc!r}"}]}
    data = json.dumps(result, default=str).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(write_fd, view) :]
    # The end of the result for the worker now, not when this process is torn down (~10 ms of a process with
    # Splice imported, more under load): the worker answers at once and reaps this child afterwards.
    os.close(write_fd)
    os._exit(0)


def _collect(pid: int, read_fd: int, timeout: float) -> dict[str, Any]:
    """The child's result; a child that gave one whole is left to ``_reap`` (after the answer), any other is
    reaped here (its exit status is the answer)."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return {"ok": False, "timeout": True, "modules": {}, "problems": []}
        ready, _, _ = select.select([read_fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if sum(map(len, chunks)) > _RESULT_LIMIT:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            break
    if not chunks:
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return {"ok": False, "exited": code, "modules": {}, "problems": []}
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


def _reap(pid: int) -> None:
    """Wait for a child that gave its result to end: it only has to exit, after the answer went out."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


class _Spare:
    """A child forked ahead of its job, waiting for it on a pipe: the fork (several milliseconds for a process
    with Splice imported, tens under load) happens between deployments instead of inside one."""

    def __init__(self) -> None:
        job_read, self.job_fd = os.pipe()
        self.result_fd, result_write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self.job_fd)
            os.close(self.result_fd)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)  # not the server's pipes, even while it waits: a worker that dies is seen to die
            os.dup2(devnull, 1)
            data = _read_all(job_read)
            if not data:  # the worker stopped, or this spare could not take its job
                os._exit(0)
            _child(json.loads(data), result_write)
        os.close(job_read)
        os.close(result_write)

    def give(self, line: bytes) -> bool:
        """Hand the job over; ``False`` if this spare is gone (it is reaped)."""
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self.job_fd, view) :]
        except OSError:
            self.discard()
            return False
        os.close(self.job_fd)
        return True

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.job_fd)
        os.close(self.result_fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def serve() -> None:
    drop_working_directory_from_path()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    spare = _Spare()
    for line in iter(stdin.readline, b""):
        job = json.loads(line)
        if not spare.give(line):
            spare = _Spare()  # the spare died (killed from outside): one made now takes the job
            if not spare.give(line):
                raise RuntimeError("a fresh isolation child cannot take its job")
        try:
            result = _collect(spare.pid, spare.result_fd, float(job["timeout"]))
        finally:
            os.close(spare.result_fd)
        stdout.write(json.dumps(result).encode() + b"\n")
        stdout.flush()
        _reap(spare.pid)
        spare = _Spare()  # after the answer, ready for the next job
    spare.discard()


if __name__ == "__main__":
    serve()
