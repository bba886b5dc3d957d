"""Publish/subscribe with guaranteed delivery: topics, subscriptions (durable queues), and the broker every server runs.

``names`` (topic names and patterns), ``specs`` (topics, subscriptions, topic permissions), ``store`` (what the
broker needs of persistent storage), ``broker`` (publish, pull, acknowledge; active-active on every server),
``delivery`` (the deliverers of push subscriptions), ``memory`` (non-persistent topics). Services publish with
``self.publish`` (``splice.server.core.pubsub``).
"""

from __future__ import annotations

from .broker import Broker
from .delivery import Deliverer
from .names import check_pattern, check_topic, matches
from .specs import SubscriptionSpec, TopicPermission, TopicSpec
from .store import Delivery, Depth, Message, MessageStore, NewMessage, Published

__all__ = [
    "Broker",
    "Deliverer",
    "Delivery",
    "Depth",
    "Message",
    "MessageStore",
    "NewMessage",
    "Published",
    "SubscriptionSpec",
    "TopicPermission",
    "TopicSpec",
    "check_pattern",
    "check_topic",
    "matches",
]
