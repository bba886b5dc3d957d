"""Outgoing REST calls: a service calling ``self.out.rest["up"]`` vs a bare Starlette app calling bare httpx.

One upstream (``bench/_bare_app.py``, ``GET /hello-async`` answers ``{"hello": "world"}``) serves both sides.
Each side is a server that, for every request it gets, calls the upstream once and answers what it got:

  bare async    Starlette ``async def`` route awaiting a shared ``httpx.AsyncClient``
  splice async  channel -> service with ``async def handle`` awaiting ``self.out.rest["up"].get(...)``
  bare sync     Starlette plain ``def`` route (its thread pool) calling a shared ``httpx.Client``
  splice sync   channel -> service with plain ``def handle`` calling ``self.out.rest["up"].get(...)``

The bare clients are set like a REST connection's defaults (20 pooled keep-alive connections, 10 s timeout);
the Splice side adds what a connection does per call (lease, cid header, retry wrapper, a log line). The
connection is defined through the admin API (``POST /splice/admin/outgoing``). The bare server runs in this
script's own subprocess (``--serve-bare``), configured as ``_bare_app.py`` is. Load, rounds and medians as
in ``rest.py`` (``wrk -t2 -c32``, or the Python load generator without wrk). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from _common import (
    Processes,
    bare_app_args,
    create_cluster,
    free_port,
    median,
    ratio,
    run,
    splice,
    table,
    wait_for,
    workdir,
)
from rest import Case, case_table, deploy_behind_channels, load_options, measure, pick_load

TARGET = 0.85
MAX_CONNECTIONS = 20  # RestSpec's default
TIMEOUT = 10.0
SERVICES = {
    "call_up_async.py": """
        from splice.server import Service

        class CallUpAsync(Service):
            name = "bench.call-up-async"

            async def handle(self):
                answer = await self.out.rest["up"].get("/hello-async")
                self.response.payload = answer.json()
    """,
    "call_up_sync.py": """
        from splice.server import Service

        class CallUpSync(Service):
            name = "bench.call-up-sync"

            def handle(self):
                self.response.payload = self.out.rest["up"].get("/hello-async").json()
    """,
}


# -- the bare side: Starlette + httpx, in a subprocess of its own ------------------------------------------


def serve_bare(port: int, upstream: str) -> None:
    """The baseline: Starlette on Hypercorn as ``_bare_app.py`` runs it, each route calling the upstream."""
    import httpx
    from hypercorn.asyncio import serve
    from hypercorn.config import Config
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    clients: dict[str, httpx.AsyncClient | httpx.Client] = {}

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def call_async(request: Request) -> JSONResponse:
        client = clients["async"]
        assert isinstance(client, httpx.AsyncClient)
        return JSONResponse((await client.get("/hello-async")).json())

    def call_sync(request: Request) -> JSONResponse:
        client = clients["sync"]
        assert isinstance(client, httpx.Client)
        return JSONResponse(client.get("/hello-async").json())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(base_url=upstream, limits=limits, timeout=TIMEOUT) as asynchronous:
            with httpx.Client(base_url=upstream, limits=limits, timeout=TIMEOUT) as blocking:
                clients["async"], clients["sync"] = asynchronous, blocking
                yield

    app = Starlette(
        routes=[Route("/ping", ping), Route("/call-up-async", call_async), Route("/call-up-sync", call_sync)],
        lifespan=lifespan,
    )
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 5.0

    async def main() -> None:
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, shutdown.set)
        await serve(app, config, shutdown_trigger=shutdown.wait)  # type: ignore[arg-type]

    asyncio.run(main())


# -- the Splice side ---------------------------------------------------------------------------------------


def start_splice(work: Path, procs: Processes, upstream: str) -> str:
    import httpx

    cluster = create_cluster(work, "cluster", procs)
    splice("start", str(cluster.directory))
    answer = httpx.post(
        cluster.url + "/splice/admin/outgoing",
        json={"name": "up", "kind": "rest", "address": upstream},
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=60,
    )
    if answer.status_code not in (200, 201):
        raise RuntimeError(f"POST /splice/admin/outgoing answered {answer.status_code}: {answer.text[:500]}")
    deploy_behind_channels(cluster, work, "bench_outgoing", SERVICES, "call-up")
    return cluster.url


def main() -> int:
    parser = load_options(__doc__.splitlines()[0])
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare, args.upstream)
        return 0
    loadgen = pick_load(args.loadgen)
    if loadgen is None:
        return 2

    with workdir(args.keep, "splice-bench-outgoing-") as work, Processes() as procs:
        upstream_port, bare_port = free_port(), free_port()
        upstream_proc = procs.start(bare_app_args(upstream_port))
        upstream = f"http://127.0.0.1:{upstream_port}"
        wait_for(upstream + "/ping", proc=upstream_proc)
        bare = procs.start([sys.executable, __file__, "--serve-bare", str(bare_port), "--upstream", upstream])
        bare_url = f"http://127.0.0.1:{bare_port}"
        wait_for(bare_url + "/ping", proc=bare)
        splice_url = start_splice(work, procs, upstream)
        cases = [
            Case("bare async", bare_url + "/call-up-async"),
            Case("splice async", splice_url + "/call-up-async"),
            Case("bare sync", bare_url + "/call-up-sync"),
            Case("splice sync", splice_url + "/call-up-sync"),
        ]
        measure("Outgoing REST", cases, loadgen, args)

    print()
    print(case_table(cases))
    by = {c.name: c for c in cases}
    print()
    ratios = [
        ["splice async / bare async (req/s)", ratio(by["splice async"].rps(), by["bare async"].rps())],
        ["splice sync / bare sync (req/s)", ratio(by["splice sync"].rps(), by["bare sync"].rps())],
    ]
    for name in ("async", "sync"):
        p99s = [median([r.p99_ms for r in by[f"{side} {name}"].runs]) for side in ("splice", "bare")]
        ratios.append([f"splice {name} / bare {name} (p99)", ratio(p99s[0], p99s[1])])
    print(table(["ratio", "value"], [[label, f"{value:.2f}"] for label, value in ratios]))
    print(f"\ntarget: Splice at least {TARGET:.2f} of bare req/s")
    return 0


if __name__ == "__main__":
    run(main)
