"""``POST /splice/admin/cluster/events``: how servers without a Redis bus send each other cluster events
(``cluster.bus.HttpBus``: a cache's change, pub/sub's doorbell), a batch per request, in the sender's order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from .operations import Operation
from .schemas import events as schemas

if TYPE_CHECKING:
    from ..runtime import Runtime


async def cluster_events(runtime: Runtime, request: Request, body: schemas.EventsBody) -> Any:
    applied = await runtime.cluster.receive_events([event.model_dump() for event in body.events])
    return {"applied": applied}


OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/cluster/events",
        cluster_events,
        "Cluster events from another server (how servers without Redis tell each other of cache changes and more)",
        schemas.EventsAnswer,
        body=schemas.EventsBody,
        errors=(413,),
    ),
]


__all__ = ["OPERATIONS"]
