"""The dashboard's screens: one module each, registered in ``SCREENS`` (the navigation, in this order).

A screen module holds ``SCREEN`` (its title and path) and ``routes()`` (its Starlette routes: the page, its
fragments and its actions). Pages extend ``base.html`` and live regions refresh on the hub's events
(``live.py``): ``hx-trigger="sse:changed"`` (the cluster's deployment sequence moved: a deploy or a change of
configuration), ``sse:cluster`` (a server came or went, or caught up), ``sse:tick`` (every few seconds: depth
of queues, job runs, metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import BaseRoute


@dataclass(frozen=True)
class Screen:
    key: str
    title: str
    path: str


def _all() -> list[tuple[Screen, list[BaseRoute]]]:
    from . import caches, channels, cluster, deployments, jobs, logs, metrics, outgoing, pubsub, security, services

    modules = (cluster, services, deployments, channels, security, outgoing, jobs, pubsub, caches, logs, metrics)
    return [(module.SCREEN, module.routes()) for module in modules]


SCREENS: tuple[Screen, ...] = (
    Screen("cluster", "Cluster", "/"),
    Screen("services", "Services", "/services"),
    Screen("deployments", "Deployments", "/deployments"),
    Screen("channels", "Channels", "/channels"),
    Screen("security", "Security", "/security"),
    Screen("outgoing", "Outgoing", "/outgoing"),
    Screen("jobs", "Jobs", "/jobs"),
    Screen("pubsub", "Pub/sub", "/topics"),
    Screen("caches", "Caches", "/caches"),
    Screen("logs", "Logs", "/logs"),
    Screen("metrics", "Metrics", "/metrics"),
)


def screen(key: str) -> Screen:
    return next(s for s in SCREENS if s.key == key)


def all_routes() -> list[BaseRoute]:
    return [route for _, routes in _all() for route in routes]


__all__ = ["SCREENS", "Screen", "all_routes", "screen"]
