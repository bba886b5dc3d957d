"""The baseline server of the benchmarks: a bare Starlette app on Hypercorn.

Started the way a Splice server starts (``splice.server.bootstrap.serve``): ``hypercorn.asyncio.serve``, one
worker, access log off, the same bind and graceful timeout, stopped by SIGTERM; on the asyncio loop (issue 18's
baseline), or with ``--loop uvloop`` on uvloop, as Hypercorn's ``worker_class = "uvloop"`` and a Splice server
run. Routes: ``/ping``, ``/hello-async`` (``async def``) and ``/hello-sync`` (plain ``def``, which Starlette runs
in its thread pool, as Splice runs a plain ``def handle``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def hello_async(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


def hello_sync(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/ping", ping), Route("/hello-async", hello_async), Route("/hello-sync", hello_sync)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0

    async def run() -> None:
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        await serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]

    if args.loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run())
    else:
        asyncio.run(run())


if __name__ == "__main__":
    main()
