"""What the REST and WebSocket pub/sub tests set up: security definitions, topics, subscriptions, permissions.

Definitions go in through the ODB repository and ``config_changed``, as the admin API puts them.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from splice.server.pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec
from splice.server.runtime import Runtime

PARTNER = {"X-API-Key": "p4rtner-k3y"}
"""The credentials of security definition ``partner`` (an API key)."""
ROBOTS = {"X-Robot-Key": "r0b0ts-k3y"}
"""``robots``: an API key in a header of its own."""
PEOPLE = {"Authorization": "Basic " + base64.b64encode(b"ann:s3cret").decode()}
"""``people``: HTTP Basic."""


async def securities(admin: httpx.AsyncClient) -> None:
    for body in (
        {"name": "partner", "kind": "apikey", "key": PARTNER["X-API-Key"]},
        {"name": "robots", "kind": "apikey", "key": ROBOTS["X-Robot-Key"], "header": "X-Robot-Key"},
        {"name": "people", "kind": "basic", "username": "ann", "password": "s3cret"},
    ):
        answer = await admin.post("/splice/admin/security", json=body)
        assert answer.status_code == 201, answer.text


async def topic(runtime: Runtime, name: str, **options: Any) -> None:
    spec = TopicSpec(name=name, **options)
    await runtime.repository.put_topic(spec.model_dump(mode="json"), replace=True)
    await runtime.config_changed(f"topic:{name}")


async def subscription(runtime: Runtime, name: str, topic: str, **options: Any) -> None:
    spec = SubscriptionSpec(name=name, topic=topic, **options)
    await runtime.repository.put_subscription(spec.model_dump(mode="json"), replace=True)
    await runtime.config_changed(f"subscription:{name}")


async def permit(runtime: Runtime, security: str, publish: list[str], subscribe: list[str]) -> None:
    spec = TopicPermission(security=security, publish=publish, subscribe=subscribe)
    await runtime.repository.put_permission(spec.model_dump(mode="json"))
    await runtime.config_changed(f"topic-permission:{security}")
