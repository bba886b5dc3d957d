"""Admin API for pub/sub (``/splice/admin/topics``, ``/subscriptions``, ``/topic-permissions``).

Topics, subscriptions and topic permissions are configuration like channels: a change is stored, recorded as a
configuration change, and every server reloads its definitions (its broker with them). The message endpoints
(publish, peek, purge, dead letters, replay) go to this server's broker, which works on the cluster's queues in
the ODB: any server answers for the whole cluster.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request

from ..core.context import current_cid
from ..core.errors import Conflict, NotFound, SpliceError
from ..core.naming import unknown_name
from ..core.pubsub import UnknownTopic
from ..pubsub.names import is_pattern, matches
from ..pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec
from ..runtime import stored_specs
from . import convertors as _convertors  # noqa: F401  (registers {name:text})
from .operations import Operation
from .schemas import common
from .schemas import pubsub as schemas

if TYPE_CHECKING:
    from ..runtime import Runtime

PUBLISHER = "admin-api"
"""Who a message published through the admin API says published it."""


class InvalidDefinition(SpliceError):
    """A topic or subscription that is well-formed but cannot be (422): a pull subscription of a topic kept only in
    memory, a retry backoff above its maximum, a body that names another topic or subscription than its path."""

    code = "invalid_definition"


def unknown(what: str, name: str, known: Iterable[str], error: type[NotFound] = NotFound) -> NotFound:
    """``no <what> named 'x' (known <what>s: a, b); did you mean 'a'?`` as ``error``."""
    return error(unknown_name(what, name, known))


async def _topics(runtime: Runtime) -> dict[str, TopicSpec]:
    return stored_specs(TopicSpec, await runtime.repository.list_topics())


async def _subscriptions(runtime: Runtime) -> dict[str, SubscriptionSpec]:
    return stored_specs(SubscriptionSpec, await runtime.repository.list_subscriptions())


async def _stats(runtime: Runtime) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The broker's figures of topics and of subscriptions, by name (``pubsub._figures``)."""
    stats = await runtime.broker.stats()
    return {row["name"]: row for row in stats["topics"]}, {row["name"]: row for row in stats["subscriptions"]}


def _agree(named: str, request: Request, what: str) -> None:
    path = request.path_params["name"]
    if named != path:
        raise InvalidDefinition(f"the body names {what} '{named}', the path '{path}': they must agree")


# -- topics -----------------------------------------------------------------------------------------------


def _topic_row(topic: TopicSpec, subscriptions: Iterable[SubscriptionSpec], figures: dict[str, Any]) -> Any:
    fed = sorted(s.name for s in subscriptions if matches(s.topic, topic.name))
    depth, oldest = figures.get("depth"), figures.get("oldest_age")
    return {**topic.model_dump(), "subscriptions": fed, "depth": depth, "oldest_age": oldest}


async def list_topics(runtime: Runtime, request: Request, body: None) -> Any:
    subscriptions = (await _subscriptions(runtime)).values()
    figures, _ = await _stats(runtime)
    topics = (await _topics(runtime)).values()
    return {"topics": [_topic_row(t, subscriptions, figures.get(t.name, {})) for t in topics]}


async def get_topic(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    topics = await _topics(runtime)
    if name not in topics:
        raise unknown("topic", name, topics, UnknownTopic)
    figures, _ = await _stats(runtime)
    return _topic_row(topics[name], (await _subscriptions(runtime)).values(), figures.get(name, {}))


async def create_topic(runtime: Runtime, request: Request, body: schemas.TopicBody) -> Any:
    return await _put_topic(runtime, TopicSpec.model_validate(body.model_dump()), replace=False)


async def replace_topic(runtime: Runtime, request: Request, body: schemas.TopicBody) -> Any:
    _agree(body.name, request, "topic")
    spec = TopicSpec.model_validate(body.model_dump())
    if not spec.persistent:
        pulled = [s.name for s in (await _subscriptions(runtime)).values() if s.topic == spec.name and not s.service]
        if pulled:
            raise InvalidDefinition(
                f"topic '{spec.name}' cannot be kept in memory only (persistent false): pull subscriptions read it"
                f" from the ODB ({', '.join(sorted(pulled))})"
            )
    return await _put_topic(runtime, spec, replace=True)


async def _put_topic(runtime: Runtime, spec: TopicSpec, replace: bool) -> Any:
    created = await runtime.repository.put_topic(spec.model_dump(mode="json"), replace)
    servers = await runtime.config_changed(f"topic:{spec.name}")
    return {"topic": spec, "created": created, "servers": servers}


async def delete_topic(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    topics = await _topics(runtime)
    if name not in topics:
        raise unknown("topic", name, topics, UnknownTopic)
    named = sorted(s.name for s in (await _subscriptions(runtime)).values() if s.topic == name)
    if named:
        raise Conflict(f"topic '{name}' has subscriptions: {', '.join(named)}; delete them first")
    await runtime.repository.delete_topic(name)
    servers = await runtime.config_changed(f"topic:{name}")
    return common.Deleted(deleted=name, servers=servers)  # type: ignore[arg-type]


async def publish(runtime: Runtime, request: Request, body: schemas.PublishBody) -> Any:
    name = request.path_params["name"]
    if name not in runtime.live.topics:
        await runtime.cluster.catch_up()  # a topic made a moment ago on another server
        if name not in runtime.live.topics:
            raise unknown("topic", name, runtime.live.topics, UnknownTopic)
    data: Any = body.data if body.data_base64 is None else base64.b64decode(body.data_base64)
    result = await runtime.broker.publish(
        name,
        data,
        headers=body.headers,
        priority=body.priority,
        expiry=body.expiry,
        key=body.key,
        publisher=PUBLISHER,
        cid=current_cid.get(),
    )
    return result.as_json()


# -- subscriptions ----------------------------------------------------------------------------------------


def _subscription_row(spec: SubscriptionSpec, figures: dict[str, Any]) -> Any:
    """The spec and its queue: in the ODB, plus the messages of non-persistent topics in this server's memory."""
    memory = figures.get("memory", {})
    queue = {key: _plus(figures.get(key), memory.get(key)) for key in ("ready", "in_flight", "dead")}
    return {**spec.model_dump(), **queue, "oldest_age": figures.get("oldest_age")}


def _plus(stored: int | None, held: int | None) -> int | None:
    return stored if held is None or stored is None else stored + held


async def list_subscriptions(runtime: Runtime, request: Request, body: None) -> Any:
    _, figures = await _stats(runtime)
    rows = (await _subscriptions(runtime)).values()
    return {"subscriptions": [_subscription_row(s, figures.get(s.name, {})) for s in rows]}


async def get_subscription(runtime: Runtime, request: Request, body: None) -> Any:
    spec = await _subscription(runtime, request.path_params["name"])
    _, figures = await _stats(runtime)
    return _subscription_row(spec, figures.get(spec.name, {}))


async def _subscription(runtime: Runtime, name: str) -> SubscriptionSpec:
    """The subscription ``name`` as stored; ``NotFound`` naming the known ones if there is none."""
    subscriptions = await _subscriptions(runtime)
    if name not in subscriptions:
        raise unknown("subscription", name, subscriptions)
    return subscriptions[name]


async def create_subscription(runtime: Runtime, request: Request, body: schemas.SubscriptionBody) -> Any:
    return await _put_subscription(runtime, _subscription_spec(body), replace=False)


async def replace_subscription(runtime: Runtime, request: Request, body: schemas.SubscriptionBody) -> Any:
    _agree(body.name, request, "subscription")
    return await _put_subscription(runtime, _subscription_spec(body), replace=True)


def _subscription_spec(body: schemas.SubscriptionBody) -> SubscriptionSpec:
    if body.max_backoff < body.backoff:
        raise InvalidDefinition(
            f"subscription '{body.name}': max_backoff ({body.max_backoff:g} s) must be at least backoff"
            f" ({body.backoff:g} s)"
        )
    return SubscriptionSpec.model_validate(body.model_dump())


async def _put_subscription(runtime: Runtime, spec: SubscriptionSpec, replace: bool) -> Any:
    warnings = await _check_subscription(runtime, spec)
    created = await runtime.repository.put_subscription(spec.model_dump(mode="json"), replace)
    servers = await runtime.config_changed(f"subscription:{spec.name}")
    return {"subscription": spec, "created": created, "warnings": warnings, "servers": servers}


async def _check_subscription(runtime: Runtime, spec: SubscriptionSpec) -> list[str]:
    """Refuse what cannot work (a topic that does not exist, a pull queue of a topic kept in memory only, a
    security definition that does not exist); answer what may not work yet (no such service, no topic matched)."""
    topics = await _topics(runtime)
    warnings = []
    if is_pattern(spec.topic):
        if not any(matches(spec.topic, name) for name in topics):
            warnings.append(f"topic pattern '{spec.topic}' matches no topic yet")
    elif spec.topic not in topics:
        raise unknown("topic", spec.topic, topics, UnknownTopic)
    elif spec.service is None and not topics[spec.topic].persistent:
        raise InvalidDefinition(
            f"subscription '{spec.name}' has no service (a pull subscription), but topic '{spec.topic}' is kept in"
            " memory only (persistent false): pull subscriptions need a persistent topic; give a service to push to"
        )
    if spec.security is not None:
        securities = {row["name"] for row in await runtime.repository.list_security()}
        if spec.security not in securities:
            raise unknown("security definition", spec.security, securities)
    if spec.service is not None and runtime.store.get(spec.service) is None:
        warnings.append(f"no service named '{spec.service}' is deployed yet: deliveries to it fail until one is")
    return warnings


async def delete_subscription(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    await _subscription(runtime, name)
    await runtime.repository.delete_subscription(name)
    servers = await runtime.config_changed(f"subscription:{name}")
    return common.Deleted(deleted=name, servers=servers)  # type: ignore[arg-type]


async def peek(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    query = schemas.PeekQuery.model_validate(dict(request.query_params))  # checked by the operation already
    await _subscription(runtime, name)
    found = await runtime.broker.peek(name, query.state, query.limit)
    return {"subscription": name, "state": query.state, "messages": [d.as_json() for d in found]}


async def dead_letters(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    query = schemas.DeadQuery.model_validate(dict(request.query_params))
    await _subscription(runtime, name)
    found = await runtime.broker.peek(name, "dead", query.limit)
    return {"subscription": name, "dead": [{**d.as_json(), "attempts": d.attempt} for d in found]}


async def purge(runtime: Runtime, request: Request, body: None) -> Any:
    name = request.path_params["name"]
    query = schemas.PurgeQuery.model_validate(dict(request.query_params))
    await _subscription(runtime, name)
    return {"subscription": name, "state": query.state, "purged": await runtime.broker.purge(name, query.state)}


async def replay(runtime: Runtime, request: Request, body: schemas.ReplayBody) -> Any:
    name = request.path_params["name"]
    await _subscription(runtime, name)
    return {"subscription": name, "replayed": await runtime.broker.replay(name, body.ids)}


# -- topic permissions ------------------------------------------------------------------------------------


async def list_permissions(runtime: Runtime, request: Request, body: None) -> Any:
    rows = await runtime.repository.list_permissions()
    return {"permissions": list(stored_specs(TopicPermission, rows, key="security").values())}


async def put_permission(runtime: Runtime, request: Request, body: schemas.PermissionBody) -> Any:
    security = request.path_params["security"]
    securities = {row["name"] for row in await runtime.repository.list_security()}
    if security not in securities:
        raise unknown("security definition", security, securities)
    spec = TopicPermission(security=security, publish=body.publish, subscribe=body.subscribe)
    created = await runtime.repository.put_permission(spec.model_dump(mode="json"))
    servers = await runtime.config_changed(f"topic-permission:{security}")
    return {"permission": spec, "created": created, "servers": servers}


async def delete_permission(runtime: Runtime, request: Request, body: None) -> Any:
    security = request.path_params["security"]
    granted = {row["security"] for row in await runtime.repository.list_permissions()}
    if security not in granted:
        listed = ", ".join(sorted(granted)) or "none"
        raise NotFound(f"security definition '{security}' has no topic permissions (those that have: {listed})")
    await runtime.repository.delete_permission(security)
    servers = await runtime.config_changed(f"topic-permission:{security}")
    return common.Deleted(deleted=security, servers=servers)  # type: ignore[arg-type]


class SubscriptionName(Convertor[str]):
    """A subscription's name in a path: any text (names may hold '/'), but none ending in what the paths below a
    subscription end in, so that ``PUT .../shipping/messages`` is a 405, not a change of 'shipping/messages'."""

    regex = r"(?s:(?!.*/(?:messages|dead|purge|replay)\Z)[^/].*)"
    """DOTALL: a name is any text, newlines included; '\\Z', not '$', which also stops before a final newline."""

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("subscription", SubscriptionName())
TOPIC = "/topics/{name}"
SUBSCRIPTION = "/subscriptions/{name:subscription}"
BELOW = "/subscriptions/{name:text}"
"""The paths below a subscription (``BELOW + "/messages"``)."""
OPERATIONS: list[Operation] = [
    Operation(
        "GET",
        "/topics",
        list_topics,
        "Topics, the subscriptions each feeds, and how many messages wait in them",
        schemas.TopicList,
    ),
    Operation(
        "POST",
        "/topics",
        create_topic,
        "Create a topic (what a [[topics]] table of splice.toml declares)",
        schemas.TopicAnswer,
        body=schemas.TopicBody,
        status=201,
        errors=(409, 413),
    ),
    Operation(
        "POST",
        TOPIC + "/publish",
        publish,
        "Publish a message to a topic; answers once it is stored for every subscription (a persistent topic)",
        schemas.PublishAnswer,
        body=schemas.PublishBody,
        errors=(404, 413, 503),
    ),
    Operation("GET", TOPIC, get_topic, "One topic", schemas.TopicRow, errors=(404,)),
    Operation(
        "PUT",
        TOPIC,
        replace_topic,
        "Create or change a topic (messages already stored keep their expiry)",
        schemas.TopicAnswer,
        body=schemas.TopicBody,
        errors=(413, 422),
    ),
    Operation(
        "DELETE",
        TOPIC,
        delete_topic,
        "Delete a topic no subscription names (subscriptions by pattern stay)",
        common.Deleted,
        errors=(404, 409),
    ),
    Operation(
        "GET",
        "/subscriptions",
        list_subscriptions,
        "Subscriptions and their queues: ready, in flight, dead, the oldest message's age",
        schemas.SubscriptionList,
    ),
    Operation(
        "POST",
        "/subscriptions",
        create_subscription,
        "Create a subscription: push (a service) or pull (none; needs a persistent topic)",
        schemas.SubscriptionAnswer,
        body=schemas.SubscriptionBody,
        status=201,
        errors=(404, 409, 413, 422),
    ),
    Operation(
        "GET",
        BELOW + "/messages",
        peek,
        "The messages waiting in a subscription (or its dead letters), oldest first, without taking them",
        schemas.MessagesAnswer,
        query=schemas.PeekQuery,
        errors=(404,),
    ),
    Operation(
        "GET",
        BELOW + "/dead",
        dead_letters,
        "A subscription's dead letters: messages that failed delivery_limit times, with the last error",
        schemas.DeadAnswer,
        query=schemas.DeadQuery,
        errors=(404,),
    ),
    Operation(
        "POST",
        BELOW + "/purge",
        purge,
        "Delete the messages of a subscription: waiting ones, dead letters, or all",
        schemas.PurgeAnswer,
        query=schemas.PurgeQuery,
        errors=(404,),
    ),
    Operation(
        "POST",
        BELOW + "/replay",
        replay,
        "Deliver dead letters again (those named, or all), their attempts counted from zero",
        schemas.ReplayAnswer,
        body=schemas.ReplayBody,
        errors=(404, 413),
    ),
    Operation("GET", SUBSCRIPTION, get_subscription, "One subscription", schemas.SubscriptionRow, errors=(404,)),
    Operation(
        "PUT",
        SUBSCRIPTION,
        replace_subscription,
        "Create or change a subscription (the messages waiting in it stay)",
        schemas.SubscriptionAnswer,
        body=schemas.SubscriptionBody,
        errors=(404, 413, 422),
    ),
    Operation(
        "DELETE",
        SUBSCRIPTION,
        delete_subscription,
        "Delete a subscription and every message waiting in it (dead letters too)",
        common.Deleted,
        errors=(404,),
    ),
    Operation(
        "GET",
        "/topic-permissions",
        list_permissions,
        "What each security definition may publish and subscribe to",
        schemas.PermissionList,
    ),
    Operation(
        "PUT",
        "/topic-permissions/{security:path}",
        put_permission,
        "Set what callers of a security definition may publish and subscribe to (topic patterns allowed)",
        schemas.PermissionAnswer,
        body=schemas.PermissionBody,
        errors=(404, 413),
    ),
    Operation(
        "DELETE",
        "/topic-permissions/{security:path}",
        delete_permission,
        "Take every topic permission of a security definition away",
        common.Deleted,
        errors=(404,),
    ),
]


__all__ = ["OPERATIONS", "InvalidDefinition", "unknown"]
