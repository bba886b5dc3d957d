"""Topic names, patterns and topic permissions: the pure rules (``pubsub.names``, ``pubsub.specs``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from splice.server.pubsub.names import check_pattern, check_topic, is_pattern, matches, matching
from splice.server.pubsub.specs import SubscriptionSpec, TopicPermission, TopicSpec


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("orders.created", "orders.created", True),
        ("orders.created", "orders.cancelled", False),
        ("orders.created", "orders.created.eu", False),
        ("orders.*", "orders.created", True),
        ("orders.*", "orders.eu.created", False),
        ("orders.*", "orders", False),
        ("orders.**", "orders.created", True),
        ("orders.**", "orders.eu.created", True),
        ("orders.**", "orders", False),
        ("*.created", "orders.created", True),
        ("*.created", "billing.created", True),
        ("*.created", "orders.eu.created", False),
        ("**.created", "orders.eu.created", True),
        ("**", "anything.at.all", True),
        ("*", "one", True),
        ("*", "one.two", False),
        ("orders.*.paid", "orders.eu.paid", True),
        ("orders.*.paid", "orders.eu.created", False),
        ("orders.**.paid", "orders.eu.de.paid", True),
        ("orders.**.paid", "orders.paid", False),
        ("ord*", "orders", False),  # not a pattern segment: no prefix matching
        ("orders.c-1_x", "orders.c-1_x", True),
    ],
)
def test_a_pattern_matches_the_topics_it_stands_for(pattern: str, topic: str, expected: bool) -> None:
    assert matches(pattern, topic) is expected


def test_matching_keeps_the_order_of_the_patterns() -> None:
    assert matching(["b.*", "a.**", "b.x", "c"], "b.x") == ["b.*", "b.x"]
    assert matching([], "b.x") == []


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("orders.created", None),
        ("a", None),
        ("a-b_c.D9", None),
        ("", "must not be empty"),
        ("x" * 201, "must be at most 200 characters long"),
        ("orders..created", "is not a topic name"),
        (".orders", "is not a topic name"),
        ("orders.", "is not a topic name"),
        ("orders.*", "is not a topic name"),
        ("orders created", "is not a topic name"),
        ("orders/created", "is not a topic name"),
    ],
)
def test_topic_names(name: str, problem: str | None) -> None:
    found = check_topic(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("orders.*", None),
        ("orders.**", None),
        ("**", None),
        ("*.created", None),
        ("orders.created", None),
        ("", "must not be empty"),
        ("orders.***", "is not a topic or pattern"),
        ("orders.c*", "is not a topic or pattern"),
        ("orders..*", "is not a topic or pattern"),
    ],
)
def test_patterns(pattern: str, problem: str | None) -> None:
    found = check_pattern(pattern)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_is_pattern() -> None:
    assert is_pattern("orders.*")
    assert is_pattern("**")
    assert not is_pattern("orders.created")


@pytest.mark.parametrize(
    ("publish", "topic", "expected"),
    [
        (["orders.*"], "orders.created", True),
        (["orders.*"], "orders.eu.created", False),
        (["orders.**"], "orders.eu.created", True),
        (["billing.paid", "orders.created"], "orders.created", True),
        ([], "orders.created", False),
        (["**"], "anything", True),
    ],
)
def test_a_permission_to_publish(publish: list[str], topic: str, expected: bool) -> None:
    permission = TopicPermission(security="shop", publish=publish)
    assert permission.may("publish", topic) is expected
    assert permission.may("subscribe", topic) is False  # subscribe grants nothing here


@pytest.mark.parametrize(
    ("granted", "asked", "expected"),
    [
        (["orders.*"], "orders.*", True),  # the same pattern
        (["orders.**"], "orders.*", True),  # '**' covers one segment
        (["orders.**"], "orders.**", True),
        (["orders.**"], "orders.*.paid", True),
        (["orders.*"], "orders.**", False),  # '*' does not cover deeper topics
        (["orders.*"], "*.created", False),  # billing.created is not covered
        (["*.created"], "*.created", True),
        (["*.*"], "orders.*", True),
        (["orders.created"], "orders.*", False),
        (["**"], "orders.**", True),
        (["orders.*.paid"], "orders.*", False),
        (["orders.*"], "orders.created", True),  # a name asked for
    ],
)
def test_a_permission_to_subscribe_to_a_pattern_needs_one_that_covers_it(
    granted: list[str], asked: str, expected: bool
) -> None:
    assert TopicPermission(security="shop", subscribe=granted).may("subscribe", asked) is expected


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0), (50, 300.0), (0, 1.0)],
)
def test_the_backoff_doubles_up_to_max_backoff(attempts: int, delay: float) -> None:
    spec = SubscriptionSpec(name="s", topic="orders.*", service="x")
    assert spec.retry_delay(attempts) == delay


def test_specs_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="max_backoff must be at least backoff"):
        SubscriptionSpec(name="s", topic="a", backoff=10, max_backoff=5)
    with pytest.raises(ValidationError, match="is not a topic or pattern"):
        SubscriptionSpec(name="s", topic="a.***")
    with pytest.raises(ValidationError, match="is not a topic name"):
        TopicSpec(name="orders.*")
    assert TopicSpec(name="orders.created").persistent is True
    assert SubscriptionSpec(name="s", topic="orders.*").ordered is True
