"""Pub/sub topics as the language server sees them: where a module publishes to one, and which the cluster has.

A service publishes with ``self.publish("orders.created", data)`` or ``await self.apublish(...)``, the topic
its first argument or ``topic=``. ``topic_uses`` finds each such call whose topic is a string literal in an
``ast`` tree, with the range of the name between its quotes (what completion replaces, a diagnostic marks and a
hover explains); ``typed_topic`` reads the text before the cursor for completion. ``Topic`` is one topic as
``GET /splice/admin/topics`` lists it; ``fetch_topics`` asks for them (``None`` from a cluster that does not
list topics: nothing is flagged then). A topic reached any other way (a variable, an f-string) is not checked.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from splice.server.client import AdminClient, ClientError

from .positions import Lines, Range

logger = logging.getLogger(__name__)
PUBLISH_METHODS = ("publish", "apublish")
_TYPED = re.compile(r"\bself\.a?publish\(\s*(?:topic\s*=\s*)?[rRuU]?(['\"])([^'\"\n]*)$")


@dataclass(frozen=True)
class TopicUse:
    """``self.publish("<name>", ...)`` or ``self.apublish("<name>", ...)`` in a module."""

    name: str
    range: Range
    """The name's text inside the quotes."""


@dataclass(frozen=True)
class Topic:
    """A topic the cluster has."""

    name: str
    persistent: bool
    subscriptions: tuple[str, ...] | None
    """The subscriptions it feeds (patterns included), or ``None`` when the cluster did not say."""

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Topic:
        fed = raw.get("subscriptions")
        names = tuple(str(s) for s in fed) if isinstance(fed, list) else None
        return cls(str(raw["name"]), raw.get("persistent", True) is not False, names)

    @property
    def detail(self) -> str:
        """One line for a completion item: ``persistent, 2 subscriptions``."""
        kept = "persistent" if self.persistent else "in memory (not persistent)"
        if self.subscriptions is None:
            return kept
        count = len(self.subscriptions)
        return f"{kept}, {count or 'no'} subscription{'' if count == 1 else 's'}"


def topic_uses(tree: ast.AST, lines: Lines) -> tuple[TopicUse, ...]:
    """Every ``self.publish``/``self.apublish`` of ``tree`` naming its topic with a string literal."""
    return tuple(use for node in ast.walk(tree) if (use := _use(node, lines)) is not None)


def _use(node: ast.AST, lines: Lines) -> TopicUse | None:
    if not isinstance(node, ast.Call):
        return None
    method = node.func
    if not (isinstance(method, ast.Attribute) and method.attr in PUBLISH_METHODS):
        return None
    if not (isinstance(method.value, ast.Name) and method.value.id == "self"):
        return None
    topic = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "topic"), None)
    if not (isinstance(topic, ast.Constant) and isinstance(topic.value, str)):
        return None
    return TopicUse(topic.value, lines.string_inside(topic))


def typed_topic(line: str) -> str | None:
    """What is typed of a topic name when ``line`` (up to the cursor) ends inside ``self.publish("``, or ``None``."""
    match = _TYPED.search(line)
    return match.group(2) if match else None


def topic_markdown(name: str, topics: Iterable[Topic] | None) -> str:
    """The hover of a topic name: whether it is persistent and the subscriptions it feeds, or why nothing is known."""
    if topics is None:
        return f"**{name}**\n\ntopic (the cluster's topics are not known)\n"
    found = next((t for t in topics if t.name == name), None)
    if found is None:
        return f"**{name}**\n\nno topic of this name in the cluster\n"
    text = f"**{name}**\n\n{'persistent topic' if found.persistent else 'topic kept in memory (not persistent)'}\n"
    if found.subscriptions:
        text += "\nsubscriptions: " + ", ".join(f"`{s}`" for s in found.subscriptions) + "\n"
    elif found.subscriptions is not None:
        text += "\nno subscriptions: a message published to it goes nowhere\n"
    return text


def fetch_topics(client: AdminClient) -> tuple[Topic, ...] | None:
    """The cluster's topics (blocking: call it in a thread); ``None`` when it does not list them."""
    try:
        raw = client.call("GET", "/splice/admin/topics").get("topics", [])
    except ClientError as exc:
        # 404: a server from before pub/sub. Any refusal leaves topics unknown, never the catalog lost.
        logger.info("topics not listed (%s): their names are not checked", exc)
        return None
    if not isinstance(raw, list):
        return None
    return tuple(Topic.from_json(item) for item in raw if isinstance(item, Mapping) and "name" in item)


__all__ = ["PUBLISH_METHODS", "Topic", "TopicUse", "fetch_topics", "topic_markdown", "topic_uses", "typed_topic"]
