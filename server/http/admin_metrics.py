"""Per-service metrics: ``GET /splice/admin/metrics`` (JSON) and ``/splice/metrics`` (Prometheus text).

Both read ``runtime.metrics`` (what the invoker records for every call on this server, since it started).
``/splice/metrics`` lies outside ``/splice/admin`` (where scrapers look) but asks for the same admin token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ..core.context import current_cid
from ..core.metrics import COARSE_MS, Metrics
from .operations import Operation
from .responses import CID_HEADER, error_body
from .schemas.observe import MetricsAnswer, MetricsQuery

if TYPE_CHECKING:
    from ..runtime import Runtime

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_BOUNDS = [f"{bound / 1000:.10g}" for bound in COARSE_MS] + ["+Inf"]
_UNAUTHORIZED = "/splice/metrics needs 'Authorization: Bearer <token>' (the admin token)"


async def get_metrics(runtime: Runtime, request: Request, body: None) -> MetricsAnswer:
    query = MetricsQuery.model_validate(dict(request.query_params))  # checked by the operation already
    figures = runtime.metrics.snapshot(query.service or None)
    worker = runtime.server.worker if runtime.server.workers > 1 else None
    return MetricsAnswer(server=runtime.server.name, worker=worker, **figures)


def prometheus_text(metrics: Metrics, server: str, worker: int | None = None) -> str:
    """The metrics in the Prometheus text exposition format 0.0.4; a worker of a server of several adds its
    ``worker`` label (each process counts its own calls: a scrape through the server's port reaches one worker,
    so scrape each worker's own URL, listed by ``splice status``)."""
    host = _label(server) + ("" if worker is None else f'",worker="{worker}')
    calls = [
        "# HELP splice_service_calls_total Calls of each service since the server started.",
        "# TYPE splice_service_calls_total counter",
    ]
    errors = [
        "# HELP splice_service_errors_total Failed calls of each service (raised, or answered a 5xx status).",
        "# TYPE splice_service_errors_total counter",
    ]
    durations = [
        "# HELP splice_service_duration_seconds How long calls of each service took.",
        "# TYPE splice_service_duration_seconds histogram",
    ]
    for name, count, failed, seconds, cumulative in metrics.buckets():
        labels = f'server="{host}",service="{_label(name)}"'
        calls.append(f"splice_service_calls_total{{{labels}}} {count}")
        errors.append(f"splice_service_errors_total{{{labels}}} {failed}")
        for bound, running in zip(_BOUNDS, cumulative, strict=True):
            durations.append(f'splice_service_duration_seconds_bucket{{{labels},le="{bound}"}} {running}')
        durations.append(f"splice_service_duration_seconds_sum{{{labels}}} {seconds!r}")
        durations.append(f"splice_service_duration_seconds_count{{{labels}}} {count}")
    return "\n".join([*calls, *errors, *durations]) + "\n"


def _label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def public_routes(runtime: Runtime) -> list[BaseRoute]:
    """Routes outside ``/splice/admin`` (``/splice/metrics``), which check the token themselves."""
    from .admin import authorized  # admin imports this module for its OPERATIONS

    async def scrape(request: Request) -> Response:
        cid = current_cid.get()
        if not authorized(runtime, request.headers.get("authorization", ""), request.url.path):
            body = error_body(401, "unauthorized", _UNAUTHORIZED, cid)
            headers = {"www-authenticate": "Bearer", CID_HEADER: cid}
            return Response(body, 401, media_type="application/json", headers=headers)
        worker = runtime.server.worker if runtime.server.workers > 1 else None
        text = prometheus_text(runtime.metrics, runtime.server.name, worker)
        return Response(text, headers={"content-type": PROMETHEUS_TYPE, CID_HEADER: cid})

    return [Route("/splice/metrics", scrape, methods=["GET"])]


OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/metrics",
        get_metrics,
        "This server's calls of each service since it started: counts, p50/p99, the last hour by minute, "
        "the last calls and failures",
        MetricsAnswer,
        query=MetricsQuery,
    ),
]

__all__ = ["OPERATIONS", "PROMETHEUS_TYPE", "prometheus_text", "public_routes"]
