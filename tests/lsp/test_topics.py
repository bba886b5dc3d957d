"""Topic names in ``self.publish("`` / ``await self.apublish("``: found with their ranges, checked against the
cluster's topics, completed and described; then the real language server against a real cluster whose topics a
``splice.toml`` declares, following the cluster as its topics change."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from lsprotocol import types

from splice.lsp.completion import Context, context_at
from splice.lsp.diagnostics import diagnose, topic_problem
from splice.lsp.index import Range, parse_module
from splice.lsp.topics import Topic, TopicUse, topic_markdown

from ..conftest import Cluster, splice
from .test_server import change, codes, complete, open_file, start, until

TOPICS = (
    Topic("orders.created", True, ("billing", "audit")),
    Topic("orders.shipped", True, ()),
    Topic("clicks", False, ("counter",)),
)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ('self.publish("orders.created", {"id": 1})', [("orders.created", Range(0, 14, 0, 28))]),
        ("await self.apublish('clicks')", [("clicks", Range(0, 21, 0, 27))]),
        ("x = 'é😀'; self.publish(r'clicks', b'')", [("clicks", Range(0, 26, 0, 32))]),
        ('self.publish(data={}, topic="orders.shipped")', [("orders.shipped", Range(0, 29, 0, 43))]),
        ('self.publish(topic, {}); self.publish(f"{x}.created"); self.publish(); self.publish(b"clicks")', []),
        ('other.publish("a"); self.pub("a"); self.broker.publish("a"); publish("a")', []),
    ],
)
def test_uses_and_their_ranges(source: str, found: list[tuple[str, Range]]) -> None:
    module = parse_module("m.py", source + "\n")
    assert [(u.name, u.range) for u in module.topics] == found


def test_a_half_typed_file_still_gives_its_whole_statements_topics() -> None:
    source = textwrap.dedent(
        """\
        from splice.server import Service


        class Ship(Service):
            def handle(self):
                self.publish("orders.shiped", {})

            def after_handle(self):
                self.publish("orders.
        """
    )
    module = parse_module("m.py", source)
    assert module.syntax_error is not None
    assert [(u.name, u.range) for u in module.topics] == [("orders.shiped", Range(5, 22, 5, 35))]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders.created", None),
        ("clicks", None),
        (
            "orders.craeted",
            ("no topic 'orders.craeted' in the cluster; did you mean 'orders.created'?", "orders.created"),
        ),
        ("payments.failed", ("no topic 'payments.failed' in the cluster", None)),
    ],
)
def test_problems(name: str, expected: tuple[str, str | None] | None) -> None:
    use = TopicUse(name, Range(3, 10, 3, 20))
    problem = topic_problem(use, TOPICS)
    if expected is None:
        assert problem is None
        return
    assert problem is not None
    assert (problem.code, problem.message, problem.suggestion) == ("unknown-topic", *expected)
    assert (problem.severity, problem.range) == ("warning", use.range)


def test_names_are_checked_only_when_the_cluster_listed_its_topics() -> None:
    module = parse_module("m.py", 'self.publish("nope")\n')
    assert diagnose(module, {}, {}, None, None) == []
    assert [p.code for p in diagnose(module, {}, {}, None, ())] == ["unknown-topic"]
    assert [p.code for p in diagnose(module, {}, {}, None, TOPICS)] == ["unknown-topic"]


@pytest.mark.parametrize(
    ("before", "context"),
    [
        ('        self.publish("ord', Context("topic", "ord")),
        ("        await self.apublish('", Context("topic", "")),
        ('self.publish( topic = r"cl', Context("topic", "cl")),
        ('self.publish("orders.created", {"', None),
        ("self.publish(", None),
        ('other.publish("', None),
        ('self.publisher("', None),
    ],
)
def test_completion_context(before: str, context: Context | None) -> None:
    assert context_at(before) == context


@pytest.mark.parametrize(
    ("topic", "detail"),
    [
        (TOPICS[0], "persistent, 2 subscriptions"),
        (TOPICS[1], "persistent, no subscriptions"),
        (TOPICS[2], "in memory (not persistent), 1 subscription"),
        (Topic("x", True, None), "persistent"),
    ],
)
def test_completion_detail(topic: Topic, detail: str) -> None:
    assert topic.detail == detail


@pytest.mark.parametrize(
    ("name", "topics", "expected"),
    [
        ("orders.created", TOPICS, "**orders.created**\n\npersistent topic\n\nsubscriptions: `billing`, `audit`\n"),
        (
            "orders.shipped",
            TOPICS,
            "**orders.shipped**\n\npersistent topic\n\nno subscriptions: a message published to it goes nowhere\n",
        ),
        ("clicks", TOPICS, "**clicks**\n\ntopic kept in memory (not persistent)\n\nsubscriptions: `counter`\n"),
        ("x", TOPICS, "**x**\n\nno topic of this name in the cluster\n"),
        ("x", None, "**x**\n\ntopic (the cluster's topics are not known)\n"),
    ],
)
def test_hover_text(name: str, topics: tuple[Topic, ...] | None, expected: str) -> None:
    assert topic_markdown(name, topics) == expected


def test_a_topic_from_the_admin_api() -> None:
    raw = {"name": "clicks", "persistent": False, "max_payload": 1024, "subscriptions": ["counter"], "depth": 0}
    assert Topic.from_json(raw) == Topic("clicks", False, ("counter",))
    assert Topic.from_json({"name": "a"}) == Topic("a", True, None)


# -- the real language server and a real cluster -------------------------------------------------------------

DECLARED = textwrap.dedent(
    """\
    [[topics]]
    name = "orders.created"

    [[topics]]
    name = "orders.shipped"

    [[topics]]
    name = "clicks"
    persistent = false

    [[subscriptions]]
    name = "billing"
    topic = "orders.created"
    service = "billing.take-order"

    [[subscriptions]]
    name = "audit"
    topic = "orders.*"
    """
)
SHOP = textwrap.dedent(
    """\
    from splice.server import Service


    class Checkout(Service):
        async def handle(self):
            await self.apublish("orders.craeted", {"id": 1})
            self.publish(topic="clicks")
            self.publish("payments.failed")
    """
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "shop.py").write_text(SHOP)
    return root


def apply(cluster: Cluster, text: str, prune: bool = False) -> None:
    with cluster.admin() as admin:
        answer = admin.post("/splice/admin/apply", json={"file": "splice.toml", "text": text, "prune": prune})
        assert answer.status_code == 200, answer.text


async def test_topic_names_from_a_live_cluster(cluster: Cluster, workspace: Path) -> None:
    apply(cluster, DECLARED)
    client = await start(workspace, {"splice": {"clusterDir": str(cluster.directory), "refreshSeconds": 0.5}})
    try:
        doc = open_file(client, workspace / "shop.py", SHOP)
        await until(lambda: codes(client, doc) == ["unknown-topic", "unknown-topic"])
        typo, unknown = client.diagnostics[doc]
        assert typo.message == "no topic 'orders.craeted' in the cluster; did you mean 'orders.created'?"
        assert typo.severity == types.DiagnosticSeverity.Warning
        assert typo.range == types.Range(types.Position(5, 29), types.Position(5, 43))
        assert unknown.message == "no topic 'payments.failed' in the cluster"
        assert unknown.range == types.Range(types.Position(7, 22), types.Position(7, 37))
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(doc), typo.range, types.CodeActionContext(diagnostics=[typo])
            )
        )
        fixes = [
            a for a in actions or [] if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix
        ]
        assert [f.edit.changes for f in fixes if f.edit] == [{doc: (types.TextEdit(typo.range, "orders.created"),)}]

        hover = await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(doc), types.Position(6, 28))
        )
        assert hover is not None
        assert isinstance(hover.contents, types.MarkupContent)
        assert hover.contents.value == "**clicks**\n\ntopic kept in memory (not persistent)\n\nno subscriptions: " + (
            "a message published to it goes nowhere\n"
        )

        change(client, doc, SHOP.replace('apublish("orders.craeted"', 'apublish("ord'), 2)
        items = {i.label: i for i in await complete(client, doc, 5, 32)}
        assert list(items) == ["orders.created", "orders.shipped"]
        assert items["orders.created"].detail == "persistent, 2 subscriptions"
        assert items["orders.shipped"].detail == "persistent, 1 subscription"
        replace = types.Range(types.Position(5, 29), types.Position(5, 32))
        assert items["orders.created"].text_edit == types.TextEdit(replace, "orders.created")
        assert [i.label for i in await complete(client, doc, 6, 28)] == ["clicks", "orders.created", "orders.shipped"]

        # the cluster changes: a topic made and one deleted show within the catalog's refresh
        change(client, doc, SHOP, 3)
        apply(cluster, DECLARED + '\n[[topics]]\nname = "payments.failed"\n')
        await until(lambda: codes(client, doc) == ["unknown-topic"])
        assert client.diagnostics[doc][0].range == typo.range
        apply(cluster, DECLARED.replace('name = "clicks"\npersistent = false\n', 'name = "payments.failed"\n'), True)
        await until(
            lambda: [d.message for d in client.diagnostics.get(doc, [])][1:] == ["no topic 'clicks' in the cluster"]
        )

        splice("stop", str(cluster.directory))
        await until(lambda: codes(client, doc) == [])  # no name is flagged while the cluster cannot say
    finally:
        await client.shutdown_session()
        await client.stop()
