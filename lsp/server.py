"""The language server: a pygls ``LanguageServer`` holding the workspace index and the cluster catalog.

Handlers are thin: they fetch the document, ask the pure modules (``index``, ``diagnostics``,
``completion``, ``outgoing``, ``topics``) and answer or publish. The catalog is refreshed in a background task
(its HTTP calls in a worker thread), never inside a request. Nothing here writes to stdout: it is the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Generator, Iterable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol.language_server import LanguageServerProtocol, lsp_method
from pygls.uris import from_fs_path, to_fs_path

from splice.server.client import ClientError
from splice.server.core import SpliceError

from . import diagnostics as diag
from .catalog import Catalog, ClusterSettings
from .completion import context_at, service_markdown, service_members
from .index import ModuleIndex, Range, ServiceDef, WorkspaceIndex, str_index
from .outgoing import OutgoingUse, connection_markdown, of_kind
from .topics import TopicUse, topic_markdown

logger = logging.getLogger(__name__)
MAX_SERVICE_ITEMS = 200
"""At most this many service names in one completion list (more: the list says it is incomplete)."""

DEPLOY_COMMAND = "splice.deploy"
_SKIP_DIRS = {".git", ".hg", ".venv", "venv", "__pycache__", "node_modules", ".mypy_cache", ".tox", "build", "dist"}
_SEVERITY = {diag.ERROR: types.DiagnosticSeverity.Error, diag.WARNING: types.DiagnosticSeverity.Warning}


class _Utf16Protocol(LanguageServerProtocol):
    """Always UTF-16 positions (LSP's default): the index computes its columns in UTF-16 code units."""

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Generator[Any, Any, types.InitializeResult]:
        if params.capabilities.general is not None:
            params.capabilities.general.position_encodings = None
        result: types.InitializeResult = yield from super().lsp_initialize(params)
        return result


class SpliceLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("splice-lsp", "0.1.0", protocol_cls=_Utf16Protocol)
        self.index = WorkspaceIndex()
        self.catalog = Catalog()
        self.root: Path | None = None
        self.deploy_problems: dict[str, list[types.Diagnostic]] = {}
        self._catalog_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._cut = False

    # -- paths ------------------------------------------------------------------------------------
    def relative(self, uri: str) -> str | None:
        path = to_fs_path(uri)
        if path is None or self.root is None:
            return None
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None

    def uri_of(self, relative: str) -> str:
        assert self.root is not None
        return str(from_fs_path(str(self.root / relative)))

    # -- index ------------------------------------------------------------------------------------
    def scan(self) -> None:
        """Index every Python file under the workspace root (hidden and tool directories left out)."""
        if self.root is None:
            return
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
            for file in files:
                if file.endswith(".py"):
                    self.reindex_file(Path(directory) / file)

    def reindex_file(self, path: Path) -> None:
        relative = self.relative(str(from_fs_path(str(path))))
        if relative is None:
            return
        try:
            source = path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            self.index.remove(relative)
            return
        self.index.update(relative, source)

    def reindex_document(self, uri: str) -> ModuleIndex | None:
        relative = self.relative(uri)
        if relative is None:
            return None
        return self.index.update(relative, self.workspace.get_text_document(uri).source)

    # -- diagnostics ------------------------------------------------------------------------------
    def diagnostics_for(self, uri: str) -> list[types.Diagnostic]:
        relative = self.relative(uri)
        module = self.index.get(relative) if relative else None
        if module is None:
            return []
        catalog = self.catalog
        found = diag.diagnose(
            module, self.index.services(), catalog.inputs(), catalog.connections(), catalog.known_topics()
        )
        return [_diagnostic(p) for p in found] + self.deploy_problems.get(uri, [])

    def publish(self, uris: Iterable[str] | None = None) -> None:
        for uri in self.workspace.text_documents if uris is None else uris:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=self.diagnostics_for(uri))
            )

    # -- catalog ----------------------------------------------------------------------------------
    def configure(self, options: object) -> None:
        settings = ClusterSettings.from_options(options)
        if settings != self.catalog.settings and (settings.configured or not self.catalog.settings.configured):
            self.catalog = Catalog(settings)
            self.refresh_catalog()

    def refresh_catalog(self) -> None:
        self._wake.set()
        if self._catalog_task is None or self._catalog_task.done():
            self._catalog_task = asyncio.get_running_loop().create_task(self._catalog_loop())

    async def _catalog_loop(self) -> None:
        while self.catalog.settings.configured:
            self._wake.clear()
            catalog = self.catalog
            before = (catalog.state, dict(catalog.services), catalog.outgoing, catalog.topics)
            message = await catalog.refresh()
            if catalog is not self.catalog:
                continue
            if message:
                kind = types.MessageType.Warning if catalog.state == "down" else types.MessageType.Info
                self.window_show_message(types.ShowMessageParams(type=kind, message=message))
            if before != (catalog.state, catalog.services, catalog.outgoing, catalog.topics):
                self.publish()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), catalog.settings.refresh_seconds)

    # -- lookups ----------------------------------------------------------------------------------
    def known_names(self) -> set[str]:
        return set(self.index.services()) | set(self.catalog.services)

    def name_at(self, uri: str, position: types.Position) -> tuple[str, Range] | None:
        """The service name under the cursor: an invoke's string, a class name or an explicit ``name``."""
        relative = self.relative(uri)
        module = self.index.get(relative) if relative else None
        if module is None:
            return None
        line, character = position.line, position.character
        for call in module.invokes:
            if call.range.contains(line, character):
                return call.service, call.range
        for name, definitions in self.index.services().items():
            for definition in definitions:
                if definition.path != relative:
                    continue
                for where in (definition.cls.range, definition.cls.explicit_name_range):
                    if where is not None and where.contains(line, character):
                        return name, where
        return None

    def connection_at(self, uri: str, position: types.Position) -> OutgoingUse | None:
        """The ``self.out.<kind>["name"]`` whose name is under the cursor."""
        relative = self.relative(uri)
        module = self.index.get(relative) if relative else None
        uses = module.outgoing if module else ()
        return next((u for u in uses if u.range.contains(position.line, position.character)), None)

    def topic_at(self, uri: str, position: types.Position) -> TopicUse | None:
        """The ``self.publish("topic"`` whose topic is under the cursor."""
        relative = self.relative(uri)
        module = self.index.get(relative) if relative else None
        uses = module.topics if module else ()
        return next((u for u in uses if u.range.contains(position.line, position.character)), None)

    def describe(self, name: str) -> str:
        definitions = self.index.services().get(name, [])
        deployed = self.catalog.services.get(name)
        channels = [str(c.get("name")) for c in self.catalog.channels if c.get("service") == name]
        if definitions:
            d = definitions[0]
            return service_markdown(name, d.cls.doc, d.module, d.input, d.output, self.catalog.where(name), channels)
        if deployed is not None:
            return service_markdown(
                name, deployed.doc, deployed.module, deployed.input, deployed.output, self.catalog.where(name), channels
            )
        return f"**{name}**\n\nunknown service\n"

    def references(self, name: str) -> list[types.Location]:
        return [_location(self.uri_of(path), call.range) for path, call in self.index.invokes_of(name)]

    def definitions(self, name: str) -> list[ServiceDef]:
        return self.index.services().get(name, [])

    # -- completion -------------------------------------------------------------------------------
    def complete(self, uri: str, position: types.Position) -> types.CompletionList:
        """The completion list at ``position``; long lists of service names are cut and marked incomplete."""
        items = self._complete(uri, position)
        return types.CompletionList(is_incomplete=self._cut, items=items)

    def _complete(self, uri: str, position: types.Position) -> list[types.CompletionItem]:
        self._cut = False
        document = self.workspace.get_text_document(uri)
        lines = document.lines
        line = lines[position.line] if position.line < len(lines) else ""
        cut = str_index(line.rstrip("\r\n"), position.character)
        before = "".join(lines[max(0, position.line - 60) : position.line]) + line[:cut]
        context = context_at(before)
        if context is None:
            return []
        start = types.Position(position.line, position.character - _utf16_len(context.prefix))
        replace = types.Range(start, position)
        if context.kind == "service":
            return self.service_items(replace, context.prefix)
        if context.kind == "payload-key":
            return self.key_items(context.service, context.quoted, replace)
        if context.kind == "connection":
            return self.connection_items(context.service, replace, context.prefix)
        if context.kind == "topic":
            return self.topic_items(replace, context.prefix)
        return _member_items()

    def service_items(self, replace: types.Range, prefix: str = "") -> list[types.CompletionItem]:
        items = []
        workspace = self.index.services()
        names = matching(workspace.keys() | self.catalog.services.keys(), prefix)
        if len(names) > MAX_SERVICE_ITEMS:
            # The client asks again as the user types (is_incomplete): a short list keeps every keystroke fast.
            names, self._cut = names[:MAX_SERVICE_ITEMS], True
        for name in names:
            definitions = workspace.get(name)
            deployed = self.catalog.services.get(name)
            module = definitions[0].module if definitions else deployed.module if deployed else ""
            where = self.catalog.where(name) or ("not deployed" if self.catalog.state == "up" else "")
            detail = f"{module}  ({where})" if where else module
            items.append(
                types.CompletionItem(
                    label=name,
                    kind=types.CompletionItemKind.Module,
                    detail=detail,
                    text_edit=types.TextEdit(replace, name),
                    data={"service": name},  # the documentation comes with completionItem/resolve
                )
            )
        return items

    def connection_items(self, kind: str, replace: types.Range, prefix: str = "") -> list[types.CompletionItem]:
        """The cluster's connections of ``kind`` (the last list it gave, also while it is down)."""
        found = {c.name: c for c in of_kind(self.catalog.outgoing or (), kind)}
        return [
            types.CompletionItem(
                label=name,
                kind=types.CompletionItemKind.Reference,
                detail=f"{kind}  {found[name].address}",
                text_edit=types.TextEdit(replace, name),
            )
            for name in matching(found, prefix)
        ]

    def topic_items(self, replace: types.Range, prefix: str = "") -> list[types.CompletionItem]:
        """The cluster's topics (the last list it gave, also while it is down)."""
        found = {t.name: t for t in self.catalog.topics or ()}
        return [
            types.CompletionItem(
                label=name,
                kind=types.CompletionItemKind.Event,
                detail=found[name].detail,
                text_edit=types.TextEdit(replace, name),
            )
            for name in matching(found, prefix)
        ]

    def key_items(self, service: str, quoted: bool, replace: types.Range) -> list[types.CompletionItem]:
        fields = diag.input_fields(service, self.index.services(), self.catalog.inputs()) or ()
        items = []
        for position, field in enumerate(fields):
            text = field.name if quoted else f'"{field.name}": '
            items.append(
                types.CompletionItem(
                    label=field.name,
                    kind=types.CompletionItemKind.Field,
                    detail=f"{field.type}{'' if field.required else ' (optional)'}",
                    sort_text=f"{0 if field.required else 1}{position:04d}",
                    text_edit=types.TextEdit(replace, text),
                )
            )
        return items

    # -- deploy -----------------------------------------------------------------------------------
    async def deploy(self, uri: str) -> dict[str, Any]:
        relative = self.relative(uri)
        if relative is None:
            raise SpliceError(f"{uri} is not inside the workspace root {self.root}")
        source = self.workspace.get_text_document(uri).source
        self.deploy_problems.pop(uri, None)
        try:
            answer = await asyncio.to_thread(self.catalog.deploy, relative, source)
        except ClientError as exc:
            problems = exc.body.get("error", {}).get("problems") or []
            self.deploy_problems[uri] = [_deploy_diagnostic(p, source) for p in problems if p.get("path") == relative]
            self.publish([uri])
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"Splice: deploy of {relative} failed: {exc}"
                )
            )
            return {"deployed": False, "error": str(exc)}
        except SpliceError as exc:
            self.window_show_message(
                types.ShowMessageParams(
                    type=types.MessageType.Error, message=f"Splice: cannot deploy {relative}: {exc}"
                )
            )
            return {"deployed": False, "error": str(exc)}
        versions = ", ".join(f"{m['path']} v{m['version']}" for m in answer.get("modules", []))
        servers = ", ".join(f"{s.get('server')}: {s.get('status')}" for s in answer.get("servers", []))
        message = f"Splice: deployed {versions} ({answer.get('status')}; {servers})"
        self.window_show_message(types.ShowMessageParams(type=types.MessageType.Info, message=message))
        self.publish([uri])
        self.refresh_catalog()
        return {"deployed": True, "status": answer.get("status"), "modules": answer.get("modules", [])}


def matching(names: Iterable[str], prefix: str) -> list[str]:
    """``names`` that contain ``prefix`` (any case): those starting with it first, then by name."""
    lowered = prefix.lower()
    found = [n for n in names if lowered in n.lower()]
    return sorted(found, key=lambda n: (not n.lower().startswith(lowered), n))


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _range(where: Range) -> types.Range:
    return types.Range(types.Position(where.line, where.start), types.Position(where.end_line, where.end))


def _location(uri: str, where: Range) -> types.Location:
    return types.Location(uri, _range(where))


def _diagnostic(problem: diag.Problem) -> types.Diagnostic:
    return types.Diagnostic(
        range=_range(problem.range),
        message=problem.message,
        severity=_SEVERITY[problem.severity],
        code=problem.code,
        source="splice",
        data={"suggestion": problem.suggestion} if problem.suggestion else None,
    )


def _deploy_diagnostic(problem: dict[str, Any], source: str) -> types.Diagnostic:
    """A problem the cluster reported (1-based line, 1-based column as ``SyntaxError.offset``) as a diagnostic."""
    lines = source.splitlines()
    line = max(int(problem.get("line") or 1) - 1, 0)
    text = lines[line] if line < len(lines) else ""
    column = problem.get("column")
    if isinstance(column, int):
        start = len(text[: max(column - 1, 0)]) + sum(1 for ch in text[: max(column - 1, 0)] if ord(ch) > 0xFFFF)
        end = start + 1
    else:
        start, end = len(text) - len(text.lstrip()), _utf16_len(text)
    where = types.Range(types.Position(line, start), types.Position(line, max(end, start)))
    message = f"deploy refused: {problem.get('message', '')}"
    return types.Diagnostic(where, message, types.DiagnosticSeverity.Error, code="deploy-refused", source="splice")


def _member_items() -> list[types.CompletionItem]:
    kinds = {
        "method": types.CompletionItemKind.Method,
        "property": types.CompletionItemKind.Property,
        "attribute": types.CompletionItemKind.Field,
    }
    return [
        types.CompletionItem(
            label=m.name,
            kind=kinds[m.kind],
            detail=m.signature,
            documentation=types.MarkupContent(types.MarkupKind.Markdown, m.doc) if m.doc else None,
        )
        for m in service_members()
    ]


def _suggestion(diagnostic: types.Diagnostic) -> str | None:
    data = diagnostic.data
    if isinstance(data, dict) and isinstance(data.get("suggestion"), str):
        return str(data["suggestion"])
    return None


server = SpliceLanguageServer()


@server.feature(types.INITIALIZE)
def initialize(ls: SpliceLanguageServer, params: types.InitializeParams) -> None:
    root = ls.workspace.root_path
    ls.root = Path(root).resolve() if root else None
    ls.catalog = Catalog(ClusterSettings.from_options(params.initialization_options))


@server.feature(types.INITIALIZED)
async def initialized(ls: SpliceLanguageServer, params: types.InitializedParams) -> None:
    ls.scan()
    logger.info("indexed %d files, %d services", len(ls.index), len(ls.index.services()))
    ls.publish()
    if ls.catalog.settings.configured:
        ls.refresh_catalog()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: SpliceLanguageServer, params: types.DidChangeConfigurationParams) -> None:
    ls.configure(params.settings)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_change(
    ls: SpliceLanguageServer,
    params: types.DidOpenTextDocumentParams | types.DidChangeTextDocumentParams | types.DidSaveTextDocumentParams,
) -> None:
    if not isinstance(params, types.DidOpenTextDocumentParams):
        ls.deploy_problems.pop(params.text_document.uri, None)  # the text the cluster refused has changed
    ls.reindex_document(params.text_document.uri)
    ls.publish()


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: SpliceLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    path = to_fs_path(uri)
    if path is not None:
        ls.reindex_file(Path(path))  # what is on disk counts again
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched_files(ls: SpliceLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    open_uris = set(ls.workspace.text_documents)
    for change in params.changes:
        relative = ls.relative(change.uri)
        path = to_fs_path(change.uri)
        if relative is None or path is None or not relative.endswith(".py") or change.uri in open_uris:
            continue
        if change.type == types.FileChangeType.Deleted:
            ls.index.remove(relative)
        else:
            ls.reindex_file(Path(path))
    ls.publish()


@server.feature(
    types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["'", '"', ".", "{", ",", " "])
)
def completion(ls: SpliceLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    return ls.complete(params.text_document.uri, params.position)


@server.feature(types.COMPLETION_ITEM_RESOLVE)
def completion_resolve(ls: SpliceLanguageServer, item: types.CompletionItem) -> types.CompletionItem:
    if isinstance(item.data, dict) and isinstance(item.data.get("service"), str):
        item.documentation = types.MarkupContent(types.MarkupKind.Markdown, ls.describe(item.data["service"]))
    return item


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: SpliceLanguageServer, params: types.HoverParams) -> types.Hover | None:
    if use := ls.connection_at(params.text_document.uri, params.position):
        text = connection_markdown(use.kind, use.name, ls.catalog.outgoing)
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), _range(use.range))
    if topic := ls.topic_at(params.text_document.uri, params.position):
        text = topic_markdown(topic.name, ls.catalog.topics)
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), _range(topic.range))
    found = ls.name_at(params.text_document.uri, params.position)
    if found is None:
        return None
    name, where = found
    return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, ls.describe(name)), _range(where))


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: SpliceLanguageServer, params: types.DefinitionParams) -> list[types.Location]:
    found = ls.name_at(params.text_document.uri, params.position)
    if found is None:
        return []
    return [_location(ls.uri_of(d.path), d.cls.range) for d in ls.definitions(found[0])]


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
def references(ls: SpliceLanguageServer, params: types.ReferenceParams) -> list[types.Location]:
    found = ls.name_at(params.text_document.uri, params.position)
    if found is None:
        return []
    out = ls.references(found[0])
    if params.context.include_declaration:
        out += [_location(ls.uri_of(d.path), d.cls.range) for d in ls.definitions(found[0])]
    return out


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.Source]),
)
def code_action(ls: SpliceLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    actions = []
    for diagnostic in params.context.diagnostics:
        suggestion = _suggestion(diagnostic)
        if diagnostic.source != "splice" or suggestion is None:
            continue
        edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(diagnostic.range, suggestion)]})
        actions.append(
            types.CodeAction(
                title=f"Change to '{suggestion}'",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                edit=edit,
                is_preferred=True,
            )
        )
    command = types.Command(title="Deploy this file to the Splice cluster", command=DEPLOY_COMMAND, arguments=[uri])
    actions.append(types.CodeAction(title=command.title, kind=types.CodeActionKind.Source, command=command))
    return actions


@server.command(DEPLOY_COMMAND)
async def deploy_command(ls: SpliceLanguageServer, *args: Any) -> dict[str, Any]:
    uri = args[0] if args and isinstance(args[0], str) else None
    if uri is None and len(ls.workspace.text_documents) == 1:
        uri = next(iter(ls.workspace.text_documents))
    if uri is None:
        raise SpliceError("splice.deploy takes the document URI as its argument")
    return await ls.deploy(uri)


__all__ = ["DEPLOY_COMMAND", "SpliceLanguageServer", "server"]
