"""The language server end to end: a real subprocess driven by pytest-lsp's real client.

With no cluster, with a running one-server cluster supplying the catalog (after a deploy through the
admin API), and with that cluster stopped or never reachable.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from ..conftest import Cluster, free_port, splice

CRM = '''from splice.server import Service


class GetCustomer(Service):
    """Looks a customer up by id."""

    class Input:
        id: int
        verbose: bool = False

    def handle(self):
        self.response.payload = {"id": self.request.input["id"]}
'''

APP = """from splice.server import Service


class Checkout(Service):
    def handle(self):
        self.invoke('crm.get-custmer', {'id': 1})
"""

REMOTE = '''from splice.server import Service


class Charge(Service):
    """Charges a card."""

    class Input:
        amount: int

    def handle(self):
        self.response.payload = {"ok": True}
'''


def uri(path: Path) -> str:
    return str(from_fs_path(str(path)))


async def until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(0.05)


async def start(root: Path, options: dict[str, Any] | None = None, command: list[str] | None = None) -> LanguageClient:
    client = make_test_lsp_client()
    await client.start_io(*(command or [sys.executable, "-m", "splice.lsp", "--stdio"]))  # as VS Code starts it
    await client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            root_uri=uri(root),
            initialization_options=options,
        )
    )
    return client


def open_file(client: LanguageClient, path: Path, text: str | None = None) -> str:
    text = path.read_text() if text is None else text
    document = types.TextDocumentItem(uri=uri(path), language_id="python", version=1, text=text)
    client.text_document_did_open(types.DidOpenTextDocumentParams(document))
    return document.uri


def change(client: LanguageClient, doc: str, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=doc),
            [types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def codes(client: LanguageClient, doc: str) -> list[str | int | None]:
    return [d.code for d in client.diagnostics.get(doc, [])]


async def complete(client: LanguageClient, doc: str, line: int, character: int) -> list[types.CompletionItem]:
    result = await client.text_document_completion_async(
        types.CompletionParams(types.TextDocumentIdentifier(doc), types.Position(line, character))
    )
    assert isinstance(result, types.CompletionList)
    return list(result.items)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "crm.py").write_text(CRM)
    (root / "app.py").write_text(APP)
    return root


@pytest.fixture
async def lsp(workspace: Path) -> AsyncIterator[LanguageClient]:
    client = await start(workspace, command=[sys.executable, "-m", "splice.server.cli", "lsp"])
    yield client
    await client.shutdown_session()
    await client.stop()


async def test_did_you_mean_and_its_quick_fix(lsp: LanguageClient, workspace: Path) -> None:
    doc = open_file(lsp, workspace / "app.py")
    await until(lambda: codes(lsp, doc) == ["unknown-service"])
    (warning,) = lsp.diagnostics[doc]
    assert warning.severity == types.DiagnosticSeverity.Warning
    assert warning.message.endswith("did you mean 'crm.get-customer'?")
    assert warning.range == types.Range(types.Position(5, 21), types.Position(5, 36))
    actions = await lsp.text_document_code_action_async(
        types.CodeActionParams(
            types.TextDocumentIdentifier(doc), warning.range, types.CodeActionContext(diagnostics=[warning])
        )
    )
    fix = next(a for a in actions or [] if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix)
    assert fix.edit is not None
    assert fix.edit.changes == {doc: (types.TextEdit(warning.range, "crm.get-customer"),)}
    change(lsp, doc, APP.replace("get-custmer", "get-customer"), 2)
    await until(lambda: codes(lsp, doc) == [])


async def test_completion_of_names_keys_and_members(lsp: LanguageClient, workspace: Path) -> None:
    text = APP.replace("        self.invoke('crm.get-custmer', {'id': 1})\n", "        self.invoke('crm.\n")
    doc = open_file(lsp, workspace / "app.py", text)
    items = await complete(lsp, doc, 5, 25)
    (item,) = [i for i in items if i.label == "crm.get-customer"]
    assert item.detail == "crm"
    item = await lsp.completion_item_resolve_async(item)
    assert isinstance(item.documentation, types.MarkupContent)
    assert "Looks a customer up by id." in item.documentation.value
    assert "`id: int`" in item.documentation.value
    assert item.text_edit == types.TextEdit(
        types.Range(types.Position(5, 21), types.Position(5, 25)), "crm.get-customer"
    )

    change(lsp, doc, APP.replace("get-custmer', {'id': 1}", "get-customer', {'id': 1, "), 2)
    keys = await complete(lsp, doc, 5, 50)
    assert [k.label for k in keys] == ["id", "verbose"]
    assert keys[1].text_edit is not None
    assert keys[1].text_edit.new_text == '"verbose": '

    change(lsp, doc, APP.replace("self.invoke('crm.get-custmer', {'id': 1})", "self."), 3)
    members = {m.label: m for m in await complete(lsp, doc, 5, 13)}
    assert {"invoke", "ainvoke", "invoke_async", "request", "response", "cid", "logger"} <= set(members)
    assert members["ainvoke"].documentation is not None


async def test_hover_definition_and_references(lsp: LanguageClient, workspace: Path) -> None:
    doc = open_file(lsp, workspace / "app.py", APP.replace("get-custmer", "get-customer"))
    here = types.TextDocumentPositionParams(types.TextDocumentIdentifier(doc), types.Position(5, 25))
    hover = await lsp.text_document_hover_async(types.HoverParams(here.text_document, here.position))
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert "**crm.get-customer**" in hover.contents.value
    assert "Looks a customer up by id." in hover.contents.value
    assert "module `crm`" in hover.contents.value

    found = await lsp.text_document_definition_async(types.DefinitionParams(here.text_document, here.position))
    assert found == [
        types.Location(uri(workspace / "crm.py"), types.Range(types.Position(3, 6), types.Position(3, 17)))
    ]

    crm = uri(workspace / "crm.py")
    refs = await lsp.text_document_references_async(
        types.ReferenceParams(
            context=types.ReferenceContext(include_declaration=False),
            text_document=types.TextDocumentIdentifier(crm),
            position=types.Position(3, 8),
        )
    )
    assert list(refs or []) == [types.Location(doc, types.Range(types.Position(5, 21), types.Position(5, 37)))]


async def test_definitions_syntax_errors_and_watched_files(lsp: LanguageClient, workspace: Path) -> None:
    doc = open_file(lsp, workspace / "app.py")
    await until(lambda: codes(lsp, doc) == ["unknown-service"])
    change(lsp, doc, "x = '😀' $ 1\n", 2)
    await until(lambda: codes(lsp, doc) == ["syntax-error"])
    assert lsp.diagnostics[doc][0].range.start == types.Position(0, 9)
    broken = APP.replace("crm.get-custmer", "crm.get-customer").replace("def handle(self)", "def handle(self, x)")
    change(lsp, doc, broken + "\n\nclass Other(Service):\n    pass\n", 3)
    await until(lambda: codes(lsp, doc) == ["bad-hook-signature", "no-handle"])

    (workspace / "billing.py").write_text(
        "from splice.server import Service\nclass Pay(Service):\n    def handle(self): ...\n"
    )
    change(lsp, doc, APP.replace("crm.get-custmer", "billing.pay"), 4)
    await until(lambda: codes(lsp, doc) == ["unknown-service"])
    lsp.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            [types.FileEvent(uri(workspace / "billing.py"), types.FileChangeType.Created)]
        )
    )
    await until(lambda: codes(lsp, doc) == ["missing-input-field"] or codes(lsp, doc) == [])


async def test_a_live_cluster_supplies_the_catalog_and_takes_deploys(cluster: Cluster, workspace: Path) -> None:
    with cluster.admin() as admin:
        answer = admin.post("/splice/admin/deploy", json={"modules": [{"path": "remote/pay.py", "source": REMOTE}]})
        assert answer.status_code == 200, answer.text
    options = {"splice": {"clusterDir": str(cluster.directory), "refreshSeconds": 0.5}}
    client = await start(workspace, options)
    try:
        text = APP.replace("self.invoke('crm.get-custmer', {'id': 1})", "self.invoke('remote.pay.charge', {})")
        doc = open_file(client, workspace / "app.py", text)
        await until(lambda: codes(client, doc) == ["missing-input-field"])
        items = {i.label: i for i in await complete(client, doc, 5, 21)}
        assert set(items) == {"app.checkout", "crm.get-customer", "remote.pay.charge"}
        assert items["remote.pay.charge"].detail == "remote.pay  (v1 on server1)"
        assert items["crm.get-customer"].detail == "crm  (not deployed)"
        keys = await complete(client, doc, 5, 42)
        assert [k.label for k in keys] == ["amount"]
        hover = await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(doc), types.Position(5, 25))
        )
        assert hover is not None
        assert isinstance(hover.contents, types.MarkupContent)
        assert "deployed: v1 on server1" in hover.contents.value
        assert "Charges a card." in hover.contents.value

        crm = open_file(client, workspace / "crm.py")
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="splice.deploy", arguments=[crm])
        )
        assert result["deployed"] is True
        await until(lambda: any("deployed crm.py v1" in m.message for m in client.messages))
        items = {i.label: i for i in await complete(client, doc, 5, 21)}
        for _ in range(100):
            if items["crm.get-customer"].detail == "crm  (v1 on server1)":
                break
            await asyncio.sleep(0.1)
            items = {i.label: i for i in await complete(client, doc, 5, 21)}
        assert items["crm.get-customer"].detail == "crm  (v1 on server1)"

        change(client, crm, CRM + "\n1 / 0\n", 2)
        result = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="splice.deploy", arguments=[crm])
        )
        assert result["deployed"] is False
        await until(lambda: "deploy-refused" in codes(client, crm))
        refused = next(d for d in client.diagnostics[crm] if d.code == "deploy-refused")
        assert refused.range.start.line == 13
        assert "ZeroDivisionError" in refused.message

        splice("stop", str(cluster.directory))
        await until(lambda: any("not reachable" in m.message for m in client.messages))
        for version in range(3, 8):
            change(client, doc, text.replace("{}", f"{{'amount': {version}}}"), version)
            await asyncio.sleep(0.3)
        await until(lambda: codes(client, doc) == [])  # the cached catalog still knows remote.pay.charge
        assert len([m for m in client.messages if "not reachable" in m.message]) == 1
    finally:
        await client.shutdown_session()
        await client.stop()


async def test_an_unreachable_cluster_degrades_with_one_message(workspace: Path) -> None:
    options = {"clusterUrl": f"http://127.0.0.1:{free_port()}", "token": "x", "refreshSeconds": 0.2}
    client = await start(workspace, options)
    try:
        doc = open_file(client, workspace / "app.py")
        await until(lambda: codes(client, doc) == ["unknown-service"])
        for version in range(2, 7):
            change(client, doc, APP + f"# edit {version}\n", version)
            await asyncio.sleep(0.3)
        await until(lambda: client.messages)
        (message,) = client.messages
        assert message.type == types.MessageType.Warning
        assert "not reachable" in message.message
        assert "workspace only" in message.message
        items = await complete(client, doc, 5, 21)
        assert "crm.get-customer" in {i.label for i in items}
    finally:
        await client.shutdown_session()
        await client.stop()


async def test_a_long_list_of_service_names_is_cut_and_filtered_by_what_is_typed(tmp_path: Path) -> None:
    root = tmp_path / "many"
    (root / "pkg").mkdir(parents=True)
    for i in range(260):
        (root / "pkg" / f"m{i:03d}.py").write_text(
            f"from splice.server import Service\n\nclass S{i:03d}(Service):\n    def handle(self):\n        pass\n"
        )
    client = await start(root)
    try:
        text = (
            "from splice.server import Service\n\nclass Edit(Service):\n    def handle(self):\n        self.invoke('\n"
        )
        doc = open_file(client, root / "edit.py", text)

        async def listed(typed: str) -> types.CompletionList:
            change(client, doc, text.replace("invoke('", f"invoke('{typed}"), len(typed) + 2)
            result = await client.text_document_completion_async(
                types.CompletionParams(types.TextDocumentIdentifier(doc), types.Position(4, 21 + len(typed)))
            )
            assert isinstance(result, types.CompletionList)
            return result

        everything = await listed("")
        assert everything.is_incomplete
        assert len(everything.items) == 200
        narrowed = await listed("pkg.m25")
        assert not narrowed.is_incomplete
        assert sorted(i.label for i in narrowed.items) == [f"pkg.m25{d}.s25{d}" for d in range(10)]
    finally:
        await client.shutdown_session()
        await client.stop()


HALF_TYPED = APP + "\n    def after_handle(self):\n        self.invoke('crm.\n"


async def test_a_file_that_does_not_parse_keeps_its_other_diagnostics(lsp: LanguageClient, workspace: Path) -> None:
    doc = open_file(lsp, workspace / "app.py", HALF_TYPED)
    await until(lambda: codes(lsp, doc) == ["unknown-service", "syntax-error"])
    unknown, syntax = lsp.diagnostics[doc]
    assert unknown.range == types.Range(types.Position(5, 21), types.Position(5, 36))
    assert syntax.range.start == types.Position(8, 20)
    assert syntax.severity == types.DiagnosticSeverity.Error
    change(lsp, doc, HALF_TYPED.replace("invoke('crm.\n", "invoke('crm.get-customer', {'id': 2})\n"), 2)
    await until(lambda: codes(lsp, doc) == ["unknown-service"])
    assert lsp.diagnostics[doc][0].range == unknown.range
    change(lsp, doc, "x = '😀' $ 1\nclass (\n", 3)
    await until(lambda: codes(lsp, doc) == ["syntax-error"])


USES = APP.replace(
    "        self.invoke('crm.get-custmer', {'id': 1})\n",
    "        self.out.rest['biling'].get('/x')\n        self.out.rest['crm']\n        self.out.sql['crm']\n",
)


async def test_outgoing_connection_names_from_a_live_cluster(cluster: Cluster, workspace: Path, tmp_path: Path) -> None:
    with cluster.admin() as admin:
        for body in (
            {"name": "billing", "kind": "rest", "address": "http://127.0.0.1:9"},
            {"name": "crm", "kind": "sql", "address": f"sqlite:///{tmp_path / 'crm.db'}"},
        ):
            answer = admin.post("/splice/admin/outgoing", json=body)
            assert answer.status_code == 201, answer.text
    client = await start(workspace, {"splice": {"clusterDir": str(cluster.directory), "refreshSeconds": 0.5}})
    try:
        doc = open_file(client, workspace / "app.py", USES)
        await until(lambda: codes(client, doc) == ["unknown-connection", "connection-kind"])
        unknown, kind = client.diagnostics[doc]
        assert unknown.message == "no rest connection named 'biling' in the cluster; did you mean 'billing'?"
        assert unknown.severity == types.DiagnosticSeverity.Warning
        assert unknown.range == types.Range(types.Position(5, 23), types.Position(5, 29))
        assert kind.message == "'crm' is a sql connection, not rest"
        assert kind.range == types.Range(types.Position(6, 23), types.Position(6, 26))
        actions = await client.text_document_code_action_async(
            types.CodeActionParams(
                types.TextDocumentIdentifier(doc), unknown.range, types.CodeActionContext(diagnostics=[unknown])
            )
        )
        fixes = [
            a for a in actions or [] if isinstance(a, types.CodeAction) and a.kind == types.CodeActionKind.QuickFix
        ]
        assert [f.edit.changes for f in fixes if f.edit] == [{doc: (types.TextEdit(unknown.range, "billing"),)}]

        hover = await client.text_document_hover_async(
            types.HoverParams(types.TextDocumentIdentifier(doc), types.Position(7, 23))
        )
        assert hover is not None
        assert isinstance(hover.contents, types.MarkupContent)
        assert hover.contents.value == f"**crm**\n\nsql connection\n\naddress `sqlite:///{tmp_path / 'crm.db'}`\n"

        change(client, doc, USES.replace("self.out.rest['biling'].get('/x')", 'self.out.rest["b'), 2)
        (item,) = await complete(client, doc, 5, 24)
        assert (item.label, item.detail) == ("billing", "rest  http://127.0.0.1:9")
        assert item.text_edit == types.TextEdit(types.Range(types.Position(5, 23), types.Position(5, 24)), "billing")
        assert [i.label for i in await complete(client, doc, 7, 22)] == ["crm"]

        splice("stop", str(cluster.directory))
        # the syntax error stays; no name is flagged while the cluster cannot say which it defines
        await until(lambda: codes(client, doc) == ["syntax-error"])
    finally:
        await client.shutdown_session()
        await client.stop()
