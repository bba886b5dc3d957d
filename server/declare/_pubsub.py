"""The ``[[topics]]``, ``[[subscriptions]]``, ``[[topic_permissions]]`` and ``[[caches]]`` parts of a declaration
file: reading each item, checking what it names, and comparing it with the stored definition.

Pure, no I/O; ``declare.reader`` calls these. An item is checked with its spec (``splice.server.pubsub.specs``,
``splice.server.cache.specs``), the model the admin API checks its bodies with, and is stored as that spec's JSON
form. The format::

    [[topics]]
    name = "orders.created"
    persistent = true                    # default; false: in memory on the publishing server, push only
    max_payload = 1048576                # optional, as are max_depth, expiry, idempotency_window

    [[subscriptions]]
    name = "billing-orders"
    topic = "orders.created"             # a topic of the file or the cluster, or a pattern: "orders.*", "orders.**"
    service = "billing.take-order"       # a push subscription; leave it out for a pull queue (persistent topics)
    ordered = true                       # optional, as are concurrency, delivery_limit, backoff, max_backoff, lease

    [[topic_permissions]]
    security = "partners"                # a security definition of the file or the cluster
    publish = ["orders.*"]
    subscribe = ["orders.**"]

    [[caches]]
    name = "sessions"
    backend = "redis"                    # default "memory" (a copy per server, kept in step over the cluster bus)
    connection = "cache"                 # a redis [[outgoing]] of the file, or one the cluster has
    expiry = 3600                        # optional, as are max_entries, max_bytes, max_value

Every cluster has a ``default`` cache; declaring one named ``default`` gives it other limits, and pruning a file
that no longer declares it only drops those limits.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from ..cache.specs import CacheSpec
from ..core.fields import render
from ..core.naming import closest
from ..core.validation import message
from ..pubsub.names import is_pattern, matches
from ..pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec
from ._model import Change, Declaration, DeclarationProblem, Definition

if TYPE_CHECKING:
    from .reader import _Reader

Model = type[TopicSpec] | type[SubscriptionSpec] | type[TopicPermission] | type[CacheSpec]
SECTIONS: dict[str, tuple[str, Model]] = {
    "topics": ("topic", TopicSpec),
    "subscriptions": ("subscription", SubscriptionSpec),
    "topic_permissions": ("topic_permission", TopicPermission),
    "caches": ("cache", CacheSpec),
}
"""Each section: the kind of its changes, and the spec of its items."""
_WHAT = {
    "topic": "a topic",
    "subscription": "a subscription",
    "topic_permission": "topic permissions",
    "cache": "a cache",
}
S = TypeVar("S", TopicSpec, SubscriptionSpec, TopicPermission, CacheSpec)
Current = Mapping[str, Sequence[Mapping[str, Any]]]
"""The cluster's definitions by section (``topics``...), as ``OdbTopics`` lists them."""


# -- reading -------------------------------------------------------------------------------------------------


def read_definition(section: str, reader: _Reader) -> Definition | None:
    """The definition of one item of ``section``, or ``None`` when ``reader`` collected a problem with it."""
    kind, model = SECTIONS[section]
    try:
        spec = model.model_validate(reader.table)
    except ValidationError as exc:
        _report(reader, exc, model, _WHAT[kind])
        return None
    return Definition(kind, spec, reader.where, reader.lines)


def _report(reader: _Reader, exc: ValidationError, model: Model, what: str) -> None:
    """Each problem at its key's line; a check of two fields (``max_backoff``, ``connection``) at the field it names."""
    from .reader import _toml_type  # reader imports this module: its helper is reached when called

    allowed = set(model.model_fields)
    for error in exc.errors():
        key = render(error["loc"])
        if not key and error["type"] in allowed:
            key = str(error["type"])
        text = message(error, _toml_type)
        if text == "unknown field":
            reader.unknown(key, allowed, what)
        else:
            reader.problem(key, text.removeprefix(f"{key} "))


def duplicates(file: str, definitions: Sequence[Definition]) -> list[DeclarationProblem]:
    """A second item of one section with the same name (topic permissions: the same security definition)."""
    seen: dict[str, str] = {}
    problems = []
    for definition in definitions:
        name, key = definition.name, definition.key
        if name in seen:
            line = definition.lines.get(key, definition.lines.get(""))
            text = f"{name!r} is declared twice (also at {seen[name]})"
            problems.append(DeclarationProblem(file, text, f"{definition.where}.{key}", line))
        seen.setdefault(name, definition.where)
    return problems


# -- checking what they name ---------------------------------------------------------------------------------


def check_definitions(
    declaration: Declaration, current: Current, security: Collection[str], outgoing: Mapping[str, str], prune: bool
) -> list[DeclarationProblem]:
    """What the file's definitions name that would not be there: a subscription's topic (and, for a pull one, a
    persistent one), a security definition, a cache's redis connection. ``security`` and ``outgoing`` (name ->
    kind) are the cluster's; with ``prune``, what only the cluster has would be deleted, so it does not count."""
    topics = {str(t["name"]): bool(t.get("persistent", True)) for t in current.get("topics", ())}
    topics.update((t.name, _spec(t, TopicSpec).persistent) for t in declaration.topics)
    declared_topics = {t.name for t in declaration.topics}
    problems = [
        p
        for s in declaration.subscriptions
        if (p := _subscription_problem(declaration, s, topics, declared_topics, prune)) is not None
    ]
    problems += _pulls_from_memory(declaration, current, prune)
    declared_sec = {s.name for s in declaration.security}
    known_sec = sorted(declared_sec | set(security))
    for definition in (*declaration.subscriptions, *declaration.topic_permissions):
        name = getattr(definition.spec, "security", None)
        if name is not None and name not in declared_sec:
            text = _absent("security definition", name, name in security, prune, known_sec)
            problems += [declaration.problem(definition, "security", text)] if text else []
    declared_out = {o.name: o.kind for o in declaration.outgoing}
    for cache in declaration.caches:
        name = _spec(cache, CacheSpec).connection
        if name is None:
            continue
        kind = declared_out.get(name, outgoing.get(name))
        if kind is not None and kind != "redis":
            text = (
                f"outgoing connection '{name}' is of kind {kind}: a redis cache keeps its entries through a redis one"
            )
        elif name not in declared_out:
            redis = sorted(n for n, k in {**outgoing, **declared_out}.items() if k == "redis")
            text = _absent("redis outgoing connection", name, kind is not None, prune, redis)
        else:
            continue
        problems += [declaration.problem(cache, "connection", text)] if text else []
    return problems


def _subscription_problem(
    declaration: Declaration, definition: Definition, topics: Mapping[str, bool], declared: Collection[str], prune: bool
) -> DeclarationProblem | None:
    spec = _spec(definition, SubscriptionSpec)
    if is_pattern(spec.topic):
        return None
    if spec.topic not in declared:
        text = _absent("topic", spec.topic, spec.topic in topics, prune, sorted(topics))
        if text:
            return declaration.problem(definition, "topic", text)
    if spec.service is None and not topics.get(spec.topic, True):
        text = f"topic '{spec.topic}' is not persistent: {_PULL}; give a 'service' to push to, or a persistent topic"
        return declaration.problem(definition, "topic", text)
    return None


_PULL = "a pull subscription (no 'service') needs a persistent topic"


def _pulls_from_memory(declaration: Declaration, current: Current, prune: bool) -> list[DeclarationProblem]:
    """A topic the file makes non-persistent that a pull subscription the cluster keeps (not in the file) reads."""
    if prune:
        return []  # the cluster's subscriptions the file does not declare go
    declared = {s.name for s in declaration.subscriptions}
    kept = [s for s in current.get("subscriptions", ()) if s["name"] not in declared and not s.get("service")]
    problems = []
    for topic in declaration.topics:
        if _spec(topic, TopicSpec).persistent:
            continue
        if readers := sorted(str(s["name"]) for s in kept if s.get("topic") == topic.name):
            text = f"{_PULL}, and the cluster's subscription '{readers[0]}' pulls from this topic"
            problems.append(declaration.problem(topic, "persistent", text))
    return problems


def _absent(what: str, name: str, exists: bool, prune: bool, known: list[str]) -> str:
    """What is wrong with naming ``what`` ``name`` that the file does not declare ('' if nothing)."""
    if exists and prune:
        return f"{what} '{name}' is not declared in the file, so pruning would delete it"
    if exists:
        return ""
    hint = closest(name, known)
    suffix = f"; did you mean '{hint}'?" if hint else ""
    return f"no {what} named '{name}' is declared in the file or exists in the cluster{suffix}"


# -- planning ------------------------------------------------------------------------------------------------


def definition_changes(declaration: Declaration, current: Current, prune: bool) -> list[Change]:
    """Create, update or leave each declared definition; with ``prune``, delete those the file does not declare."""
    changes: list[Change] = []
    doomed: list[Change] = []
    for section, (kind, model) in SECTIONS.items():
        key = "security" if kind == "topic_permission" else "name"
        rows = {str(row[key]): row for row in current.get(section, ())}
        declared: tuple[Definition, ...] = getattr(declaration, section)
        changes += [_change(d, rows.get(d.name), model) for d in declared]
        if prune:
            gone = sorted(set(rows) - {d.name for d in declared})
            doomed += [Change(kind, name, "delete") for name in gone]
    return changes + doomed


def _change(definition: Definition, row: Mapping[str, Any] | None, model: Model) -> Change:
    if row is None:
        return Change(definition.kind, definition.name, "create")
    wanted = definition.stored()
    try:  # read as every server reads it (LiveConfig): a field an older Splice did not store has its default
        have = model.model_validate(dict(row), strict=False).model_dump(mode="json")
    except ValidationError:
        have = dict(row)
    differs = tuple(key for key in dict.fromkeys([*wanted, *have]) if wanted.get(key) != have.get(key))
    return Change(definition.kind, definition.name, "update" if differs else "unchanged", differs)


def definition_warnings(
    declaration: Declaration, current: Current, plan: Sequence[Change], services: Collection[str] | None
) -> list[str]:
    """Push subscriptions whose service is not deployed, patterns no topic matches yet, and the messages that
    pruning a subscription deletes with it."""
    warnings = []
    topics = {str(t["name"]) for t in current.get("topics", ())} | {t.name for t in declaration.topics}
    for definition in declaration.subscriptions:
        spec = _spec(definition, SubscriptionSpec)
        if services is not None and spec.service is not None and spec.service not in services:
            warnings.append(f"subscription {spec.name}: no service named '{spec.service}' is deployed yet")
        if is_pattern(spec.topic) and not any(matches(spec.topic, topic) for topic in topics):
            warnings.append(f"subscription {spec.name}: no topic matches '{spec.topic}' yet")
    for change in plan:
        if change.kind == "subscription" and change.action == "delete":
            warnings.append(f"subscription {change.name}: pruning deletes it with the messages waiting in it")
    return warnings


def _spec(definition: Definition, model: type[S]) -> S:
    """``definition``'s spec, known to be of ``model`` (its section's)."""
    spec = definition.spec
    assert isinstance(spec, model)
    return spec
