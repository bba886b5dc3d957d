"""Topics, subscriptions, topic permissions and caches in a declaration file (``[[topics]]``, ``[[subscriptions]]``,
``[[topic_permissions]]``, ``[[caches]]``).

Pure first (parse, located problems, what they name, plans), table-driven; then applied on one in-process server
on every ODB: created in one transaction with one configuration change that every server's live configuration
reloads, left alone when applied again, updated in place, deleted only with prune.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from splice.server.cache.specs import CacheSpec
from splice.server.declare.reader import Declaration, DeclarationError, Definition, parse, plan
from splice.server.http.responses import http_status
from splice.server.pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec
from splice.server.runtime import Runtime
from tests.conftest import InProcess

FILE = textwrap.dedent(
    """\
    [[security]]
    name = "partners"
    kind = "apikey"
    key_env = "PARTNERS_KEY"

    [[outgoing]]
    name = "cache"
    kind = "redis"
    address = "redis://127.0.0.1:6379/0"

    [[topics]]
    name = "orders.created"
    max_payload = 65536
    expiry = 3600

    [[topics]]
    name = "orders.shipped"

    [[topics]]
    name = "clicks"
    persistent = false

    [[subscriptions]]
    name = "billing-orders"
    topic = "orders.created"
    service = "billing.take-order"
    delivery_limit = 3

    [[subscriptions]]
    name = "partner-feed"
    topic = "orders.*"
    ordered = false
    concurrency = 4
    security = "partners"

    [[subscriptions]]
    name = "click-counter"
    topic = "clicks"
    service = "stats.count"

    [[topic_permissions]]
    security = "partners"
    publish = ["orders.created"]
    subscribe = ["orders.**"]

    [[caches]]
    name = "default"
    max_entries = 1000

    [[caches]]
    name = "sessions"
    backend = "redis"
    connection = "cache"
    expiry = 1800
    """
)
CHANGES = [
    "create security definition partners",
    "create outgoing connection cache",
    "create topic orders.created",
    "create topic orders.shipped",
    "create topic clicks",
    "create subscription billing-orders",
    "create subscription partner-feed",
    "create subscription click-counter",
    "create topic permissions of partners",
    "create cache default",
    "create cache sessions",
]


def rows(declaration: Declaration) -> dict[str, list[dict[str, Any]]]:
    """What the ODB lists after applying ``declaration`` (``OdbTopics.list_*``: the specs' JSON forms)."""
    sections = ("topics", "subscriptions", "topic_permissions", "caches")
    return {section: [d.stored() for d in getattr(declaration, section)] for section in sections}


def shown(result: Any) -> list[str]:
    return [str(c) for c in result.changes if c.action != "unchanged"]


def test_a_file_declares_topics_subscriptions_permissions_and_caches_with_defaults() -> None:
    declaration = parse(FILE, "splice.toml")
    created, shipped, clicks = declaration.topics
    assert created == Definition(
        "topic", TopicSpec(name="orders.created", max_payload=65536, expiry=3600.0), "topics[0]", {}
    )
    assert (shipped.spec, clicks.spec) == (TopicSpec(name="orders.shipped"), TopicSpec(name="clicks", persistent=False))
    assert created.lines == {"": 11, "name": 12, "max_payload": 13, "expiry": 14}
    billing, feed, counter = (d.spec for d in declaration.subscriptions)
    assert billing == SubscriptionSpec(
        name="billing-orders", topic="orders.created", service="billing.take-order", delivery_limit=3
    )
    assert (feed.service, feed.ordered, feed.concurrency, feed.security, feed.lease) == (None, False, 4, "partners", 30)
    assert counter.service == "stats.count"
    (permission,) = declaration.topic_permissions
    assert (permission.name, permission.key, permission.kind) == ("partners", "security", "topic_permission")
    assert permission.spec == TopicPermission(security="partners", publish=["orders.created"], subscribe=["orders.**"])
    assert [d.spec for d in declaration.caches] == [
        CacheSpec(name="default", max_entries=1000),
        CacheSpec(name="sessions", backend="redis", connection="cache", expiry=1800),
    ]
    assert declaration.caches[1].stored() == {
        "name": "sessions",
        "backend": "redis",
        "max_entries": 100_000,
        "max_bytes": 64 * 1024 * 1024,
        "expiry": 1800.0,
        "max_value": 1024 * 1024,
        "connection": "cache",
    }
    assert [d.name for d in declaration.definitions()][:4] == [
        "orders.created",
        "orders.shipped",
        "clicks",
        "billing-orders",
    ]


def table(section: str, **fields: object) -> str:
    lines = [f"{key} = {_toml(value)}" for key, value in fields.items() if value is not None]
    return f"[[{section}]]\n" + "\n".join(lines) + "\n"


def topic(**fields: object) -> str:
    return table("topics", **{"name": "orders.created", **fields})


def subscription(**fields: object) -> str:
    return table(
        "subscriptions", **{"name": "billing-orders", "topic": "orders.created", "service": "b.take", **fields}
    )


def permission(**fields: object) -> str:
    return table("topic_permissions", **{"security": "partners", "publish": ["orders.*"], **fields})


def cache(**fields: object) -> str:
    return table("caches", **{"name": "sessions", **fields})


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            topic(persistant=False),
            "splice.toml:3: topics[0].persistant: unknown field for a topic; did you mean 'persistent'?",
        ),
        (topic(name="orders created"), "splice.toml:2: topics[0].name: 'orders created' is not a topic name"),
        (topic(name="orders.*"), "splice.toml:2: topics[0].name: 'orders.*' is not a topic name"),
        (topic(max_payload=0), "splice.toml:3: topics[0].max_payload: must be >= 1, got 0"),
        (topic(max_payload=17 * 1024 * 1024), "splice.toml:3: topics[0].max_payload: must be <= 16777216"),
        (topic(persistent="yes"), "splice.toml:3: topics[0].persistent: must be a boolean, got str"),
        (topic(expiry=0), "splice.toml:3: topics[0].expiry: must be > 0"),
        (topic() + topic(), "splice.toml:4: topics[1].name: 'orders.created' is declared twice (also at topics[0])"),
        (subscription(topic=None), "splice.toml:1: subscriptions[0].topic: is required"),
        (
            subscription(topic="orders.*x"),
            "splice.toml:3: subscriptions[0].topic: 'orders.*x' is not a topic or pattern",
        ),
        (subscription(service="bad name"), "splice.toml:4: subscriptions[0].service: name 'bad name' may only hold"),
        (subscription(delivery_limit=0), "splice.toml:5: subscriptions[0].delivery_limit: must be >= 1, got 0"),
        (
            subscription(backoff=10, max_backoff=5),
            "splice.toml:6: subscriptions[0].max_backoff: must be at least backoff",
        ),
        (
            subscription(serivce="x"),
            "subscriptions[0].serivce: unknown field for a subscription; did you mean 'service'?",
        ),
        (
            subscription() + subscription(topic="orders.*"),
            "splice.toml:6: subscriptions[1].name: 'billing-orders' is declared twice (also at subscriptions[0])",
        ),
        (permission(security=None), "splice.toml:1: topic_permissions[0].security: is required"),
        (permission(publish="orders.*"), "splice.toml:3: topic_permissions[0].publish: must be an array, got str"),
        (permission(subscribe=["orders..x"]), "splice.toml:4: topic_permissions[0].subscribe[0]: 'orders..x' is not a"),
        (permission(publish=None, name="x"), "topic_permissions[0].name: unknown field for topic permissions"),
        (
            permission() + permission(),
            "splice.toml:5: topic_permissions[1].security: 'partners' is declared twice (also at topic_permissions[0])",
        ),
        (cache(backend="redis"), "splice.toml:1: caches[0].connection: a redis cache needs 'connection'"),
        (cache(connection="cache"), "splice.toml:3: caches[0].connection: only a redis cache takes 'connection'"),
        (cache(backend="memcached"), "splice.toml:3: caches[0].backend: must be 'memory' or 'redis', got 'memcached'"),
        (cache(max_bytes=10), "splice.toml:3: caches[0].max_bytes: must be >= 1024, got 10"),
        (cache(max_entires=5), "caches[0].max_entires: unknown field for a cache; did you mean 'max_entries'?"),
        ("[[topic]]\nname = 'x'\n", "splice.toml:1: topic: unknown section; did you mean [[topics]]?"),
        ("[[subscription]]\nname = 'x'\n", "unknown section; did you mean [[subscriptions]]?"),
        ("caches = 1\n", "splice.toml:1: caches: must be an array of tables"),
    ],
)
def test_problems_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    found = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) or expected in p for p in found), found
    assert http_status(caught.value) == 422


def test_every_problem_is_named_at_once_in_line_order() -> None:
    text = topic(max_payload=0) + subscription(topic="a b") + cache(backend="redis")
    with pytest.raises(DeclarationError) as caught:
        parse(text, "splice.toml")
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (3, "topics[0].max_payload"),
        (6, "subscriptions[0].topic"),
        (8, "caches[0].connection"),
    ]


# -- what they name ------------------------------------------------------------------------------------------

CLUSTER_TOPIC = {"name": "orders.created", "persistent": True}
MEMORY_TOPIC = {"name": "clicks", "persistent": False}
PULL_ROW = {"name": "clicks-queue", "topic": "clicks", "service": None}


def planned(
    text: str,
    current: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    security: Sequence[str] = (),
    outgoing: Mapping[str, str] | None = None,
    **options: Any,
) -> Any:
    sec = [{"name": n, "kind": "apikey", "username": None, "header": "X-API-Key", "secret_hash": "h"} for n in security]
    out = [{"name": n, "kind": k, "config": {}, "secret_names": []} for n, k in (outgoing or {}).items()]
    return plan(parse(text, "splice.toml"), [], sec, {}, outgoing=out, definitions=current or {}, **options)


def refused(text: str, *args: Any, **options: Any) -> list[str]:
    with pytest.raises(DeclarationError) as caught:
        planned(text, *args, **options)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "current", "expected"),
    [
        (
            subscription(topic="orders.craeted") + topic(),
            {},
            "splice.toml:3: subscriptions[0].topic: no topic named 'orders.craeted' is declared in the file or exists"
            " in the cluster; did you mean 'orders.created'?",
        ),
        (subscription(service=None, topic="clicks") + topic(name="clicks", persistent=False), {}, "'clicks' is not"),
        (subscription(service=None, topic="clicks"), {"topics": [MEMORY_TOPIC]}, "topic 'clicks' is not persistent"),
        (
            topic(name="clicks", persistent=False),
            {"topics": [MEMORY_TOPIC], "subscriptions": [{**PULL_ROW, "topic": "clicks"}]},
            "splice.toml:3: topics[0].persistent: a pull subscription (no 'service') needs a persistent topic, and"
            " the cluster's subscription 'clicks-queue' pulls from this topic",
        ),
        (
            permission(security="partnrs"),
            {},
            "splice.toml:2: topic_permissions[0].security: no security definition named 'partnrs' is declared in the"
            " file or exists in the cluster; did you mean 'partners'?",
        ),
        (
            subscription(security="robots", topic="orders.*"),
            {},
            "splice.toml:5: subscriptions[0].security: no security definition named 'robots'",
        ),
        (
            cache(backend="redis", connection="cahce"),
            {},
            "splice.toml:4: caches[0].connection: no redis outgoing connection named 'cahce' is declared in the"
            " file or exists in the cluster; did you mean 'cache'?",
        ),
        (
            cache(backend="redis", connection="billing"),
            {},
            "splice.toml:4: caches[0].connection: outgoing connection 'billing' is of kind rest: a redis cache keeps"
            " its entries through a redis one",
        ),
    ],
)
def test_what_a_definition_names_must_be_there(
    text: str, current: Mapping[str, Sequence[Mapping[str, Any]]], expected: str
) -> None:
    found = refused(text, current, ["partners"], {"cache": "redis", "billing": "rest"})
    assert any(expected in p for p in found), found


def test_names_the_cluster_has_will_do_unless_pruning_would_delete_them() -> None:
    text = subscription() + permission() + cache(backend="redis", connection="cache")
    current = {"topics": [CLUSTER_TOPIC]}
    assert shown(planned(text, current, ["partners"], {"cache": "redis"})) == [
        "create subscription billing-orders",
        "create topic permissions of partners",
        "create cache sessions",
    ]
    assert refused(text, current, ["partners"], {"cache": "redis"}, prune=True) == [
        "splice.toml:3: subscriptions[0].topic: topic 'orders.created' is not declared in the file, so pruning would"
        " delete it",
        "splice.toml:6: topic_permissions[0].security: security definition 'partners' is not declared in the file,"
        " so pruning would delete it",
        "splice.toml:11: caches[0].connection: redis outgoing connection 'cache' is not declared in the file, so"
        " pruning would delete it",
    ]


def test_patterns_and_push_subscriptions_of_memory_topics_need_no_declared_topic() -> None:
    text = subscription(topic="orders.**", service=None) + subscription(name="count", topic="clicks", service="s.count")
    result = planned(text, {"topics": [MEMORY_TOPIC]}, services={"s.count"})
    assert shown(result) == ["create subscription billing-orders", "create subscription count"]
    assert result.warnings == ("subscription billing-orders: no topic matches 'orders.**' yet",)


def test_problems_of_channels_and_definitions_come_together() -> None:
    text = table("channels", name="x", path="/x", service="s.x", security="nope") + permission(security="nope")
    found = refused(text)
    assert [p.split(": ")[1] for p in found] == ["channels[0].security", "topic_permissions[0].security"]


# -- plans ---------------------------------------------------------------------------------------------------


def test_a_new_cluster_gets_everything_created_in_order() -> None:
    result = planned(FILE)
    assert shown(result) == CHANGES
    assert result.warnings == ()


def test_the_same_file_again_changes_nothing() -> None:
    declaration = parse(FILE, "splice.toml")
    current = rows(declaration)
    result = planned(FILE, current, ["partners"], {"cache": "redis"}, prune=True)
    definitions = [c for c in result.changes if c.kind not in ("security", "outgoing")]
    assert [c.action for c in definitions] == ["unchanged"] * 9


def test_a_row_an_older_splice_wrote_reads_with_defaults() -> None:
    current = {"topics": [{"name": "orders.created"}], "caches": [{"name": "sessions", "max_entries": 5}]}
    result = planned(topic() + cache(), current)
    assert shown(result) == ["update cache sessions (max_entries)"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("max_payload = 65536", "max_payload = 65537"), "update topic orders.created (max_payload)"),
        (("expiry = 3600\n", ""), "update topic orders.created (expiry)"),
        (('name = "clicks"\npersistent = false', 'name = "clicks"'), "update topic clicks (persistent)"),
        (("delivery_limit = 3", "delivery_limit = 3\nlease = 5"), "update subscription billing-orders (lease)"),
        (('"billing.take-order"', '"billing.take"'), "update subscription billing-orders (service)"),
        (('topic = "orders.*"', 'topic = "orders.**"'), "update subscription partner-feed (topic)"),
        (('subscribe = ["orders.**"]', "subscribe = []"), "update topic permissions of partners (subscribe)"),
        (("max_entries = 1000", "max_entries = 1000\nexpiry = 60"), "update cache default (expiry)"),
    ],
)
def test_a_changed_field_is_an_update_of_that_field(edit: tuple[str, str], expected: str) -> None:
    text = FILE.replace(*edit)
    assert text != FILE
    result = planned(text, rows(parse(FILE, "splice.toml")), ["partners"], {"cache": "redis"})
    definitions = [str(c) for c in result.changes if c.kind not in ("security", "outgoing") and c.action != "unchanged"]
    assert definitions == [expected]


def test_definitions_the_file_does_not_declare_are_deleted_only_with_prune() -> None:
    current = rows(parse(FILE, "splice.toml"))
    text = topic(max_payload=65536, expiry=3600) + subscription(topic="orders.created")
    kept = planned(text, current)
    assert shown(kept) == ["update subscription billing-orders (service, delivery_limit)"]
    pruned = planned(text, current, prune=True)
    assert shown(pruned)[1:] == [
        "delete topic clicks",
        "delete topic orders.shipped",
        "delete subscription click-counter",
        "delete subscription partner-feed",
        "delete topic permissions of partners",
        "delete cache default",
        "delete cache sessions",
    ]
    assert pruned.warnings == (
        "subscription click-counter: pruning deletes it with the messages waiting in it",
        "subscription partner-feed: pruning deletes it with the messages waiting in it",
    )


def test_warnings_name_push_subscriptions_whose_service_is_not_deployed() -> None:
    result = planned(FILE, services={"stats.count"})
    assert result.warnings == ("subscription billing-orders: no service named 'billing.take-order' is deployed yet",)


# -- applied on a server --------------------------------------------------------------------------------------

KEY = "k3y-for-the-pubsub-apply-test"


def runtime_of(server: InProcess) -> Runtime:
    assert isinstance(server.runtime, Runtime)
    return server.runtime


async def apply(server: InProcess, text: str, status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"file": "splice.toml", "text": text, "secrets": {"PARTNERS_KEY": KEY}, **extra}
    answer = await server.admin.post("/splice/admin/apply", json=body)
    assert answer.status_code == status, answer.text
    result: dict[str, Any] = answer.json()
    return result


def changes(answer: dict[str, Any]) -> list[str]:
    words = {"security": "security definition", "outgoing": "outgoing connection"}
    words["topic_permission"] = "topic permissions of"
    listed = [c for c in answer["changes"] if c["action"] != "unchanged"]
    return [
        f"{c['action']} {words.get(c['kind'], c['kind'])} {c['name']}"
        + (f" ({', '.join(c['fields'])})" if c["fields"] else "")
        for c in listed
    ]


async def test_definitions_are_created_reloaded_everywhere_then_left_alone(server: InProcess) -> None:
    runtime = runtime_of(server)
    sequence = await runtime.repository.last_sequence()

    first = await apply(server, FILE)
    assert (first["status"], first["changed"]) == ("applied", True)
    assert changes(first) == CHANGES
    assert [s["status"] for s in first["servers"]] == ["deployed"]
    assert await runtime.repository.last_sequence() == sequence + 1
    live = runtime.live
    assert sorted(live.topics) == ["clicks", "orders.created", "orders.shipped"]
    assert live.topics["orders.created"] == TopicSpec(name="orders.created", max_payload=65536, expiry=3600)
    assert live.topics["clicks"].persistent is False
    assert live.subscriptions["partner-feed"] == parse(FILE, "x").subscriptions[1].spec
    assert live.permissions["partners"].may("subscribe", "orders.eu.created")
    assert not live.permissions["partners"].may("publish", "orders.shipped")
    assert (live.caches["default"].max_entries, live.caches["sessions"].connection) == (1000, "cache")
    assert await runtime.repository.get_subscription("billing-orders") == {
        **SubscriptionSpec(
            name="billing-orders", topic="orders.created", service="billing.take-order", delivery_limit=3
        ).model_dump(mode="json"),
    }

    second = await apply(server, FILE)
    assert (second["status"], second["changed"], second["servers"]) == ("unchanged", False, [])
    assert second["counts"] == {"create": 0, "update": 0, "delete": 0, "unchanged": len(CHANGES)}
    assert await runtime.repository.last_sequence() == sequence + 1


async def test_a_changed_definition_is_updated_in_place_and_pruning_deletes_the_rest(server: InProcess) -> None:
    runtime = runtime_of(server)
    await apply(server, FILE)
    edited = FILE.replace("delivery_limit = 3", "delivery_limit = 7").replace("max_entries = 1000", "max_entries = 9")
    answer = await apply(server, edited)
    assert changes(answer) == [
        "update subscription billing-orders (delivery_limit)",
        "update cache default (max_entries)",
    ]
    assert (
        runtime.live.subscriptions["billing-orders"].delivery_limit,
        runtime.live.caches["default"].max_entries,
    ) == (
        7,
        9,
    )

    parts = edited.split("\n\n")
    only_orders = "\n\n".join(p for p in parts if "[[security]]" in p or ("orders" in p and "[[topic_perm" not in p))
    assert (await apply(server, only_orders))["status"] == "unchanged"
    pruned = await apply(server, only_orders, prune=True)
    assert changes(pruned) == [
        "delete topic clicks",
        "delete subscription click-counter",
        "delete topic permissions of partners",
        "delete cache default",
        "delete cache sessions",
        "delete outgoing connection cache",
    ]
    assert sorted(runtime.live.topics) == ["orders.created", "orders.shipped"]
    assert sorted(runtime.live.subscriptions) == ["billing-orders", "partner-feed"]
    assert (runtime.live.permissions, runtime.live.caches) == ({}, {})
    assert await runtime.repository.list_permissions() == []


async def test_a_refused_file_changes_nothing(server: InProcess) -> None:
    runtime = runtime_of(server)
    broken = FILE.replace('topic = "clicks"\nservice = "stats.count"', 'topic = "clicks"')
    answer = await apply(server, broken, status=422)
    (problem,) = answer["error"]["problems"]
    line = broken.splitlines().index('topic = "clicks"') + 1
    assert (problem["file"], problem["line"], problem["field"]) == ("splice.toml", line, "subscriptions[2].topic")
    assert problem["message"].startswith("topic 'clicks' is not persistent: a pull subscription (no 'service')")
    assert (await runtime.repository.list_topics(), await runtime.repository.list_security()) == ([], [])
    assert runtime.live.topics == {}
