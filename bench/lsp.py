"""The language server on a workspace of 1,000 service modules.

Measured, with the server as a real subprocess (``python -m splice.lsp``) driven by pytest-lsp's client:

  initial index           the workspace index built in this process (``WorkspaceIndex``), and the server's
                          start: ``initialized`` sent until its first completion answers (it indexes first)
  completion              round trip of ``textDocument/completion`` inside ``self.invoke('`` (1,000+ names),
                          p50/p95 over 200 requests
  diagnostics             ``didChange`` sent until its ``publishDiagnostics`` arrives (50 changes, alternating a
                          misspelled and a correct service name)

There is no external baseline for a language server: the ratio is against a bare ``ast.parse`` of the
same 1,000 files measured in the same run. Targets: completion p95 under 20 ms, diagnostics under 100 ms.
Benchmarks are not tests: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import sys
import time
from pathlib import Path

from _common import machine, median, percentile, ratio, run, summary, table, workdir

COMPLETION_TARGET_MS = 20.0
DIAGNOSTICS_TARGET_MS = 100.0

MODULE = '''from splice.server import Service


class Step{i}(Service):
    """Step {i} of the pipeline: reads, transforms and hands on."""

    class Input:
        order_id: int
        items: list[str]
        note: str | None = None

    class Output:
        ok: bool

    async def handle(self) -> None:
        await self.ainvoke("pkg{j}.mod{k}.step{k}", {{"order_id": 1, "items": []}})
        self.response.payload = {{"ok": True}}
'''


def make_workspace(root: Path, count: int) -> list[Path]:
    files = []
    for i in range(count):
        k = (i + 1) % count
        path = root / f"pkg{i // 100}" / f"mod{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(MODULE.format(i=i, j=k // 100, k=k))
        files.append(path)
    return files


def bare_parse(files: list[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        ast.parse(path.read_text(), filename=str(path))
    return time.perf_counter() - started


def index_in_process(root: Path, files: list[Path]) -> tuple[float, int]:
    from splice.lsp.index import WorkspaceIndex

    started = time.perf_counter()
    index = WorkspaceIndex()
    for path in files:
        index.update(path.relative_to(root).as_posix(), path.read_text())
    services = len(index.services())
    return time.perf_counter() - started, services


async def drive(root: Path, requests: int, changes: int) -> dict[str, list[float]]:
    from lsprotocol import types
    from pygls.uris import from_fs_path
    from pytest_lsp import client_capabilities
    from pytest_lsp.client import make_test_lsp_client

    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "splice.lsp")
    figures: dict[str, list[float]] = {"start": [], "completion": [], "diagnostics": []}
    try:
        editing = root / "edit.py"
        text = "from splice.server import Service\n\n\nclass Edit(Service):\n    def handle(self):\n"
        text += "        self.invoke('pkg"
        editing.write_text(text + "')\n")
        uri = str(from_fs_path(str(editing)))
        params = types.CompletionParams(types.TextDocumentIdentifier(uri), types.Position(5, 24))
        capabilities = client_capabilities("visual-studio-code")
        started = time.perf_counter()
        await client.initialize_session(
            types.InitializeParams(capabilities=capabilities, root_uri=str(from_fs_path(str(root))))
        )
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "python", 1, text + "')\n"))
        )
        await client.text_document_completion_async(params)
        figures["start"].append(time.perf_counter() - started)
        count = 0
        for _ in range(requests):
            started = time.perf_counter()
            result = await client.text_document_completion_async(params)
            figures["completion"].append((time.perf_counter() - started) * 1000)
            count = len(result.items) if isinstance(result, types.CompletionList) else 0
        figures["items"] = [float(count)]
        for version in range(2, changes + 2):
            name = "pkg0.mod1.step1" if version % 2 else "pkg0.mod1.stepp1"
            body = text[: -len("pkg")] + name + "')\n"
            waiting = client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            started = time.perf_counter()
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    types.VersionedTextDocumentIdentifier(version=version, uri=uri),
                    [types.TextDocumentContentChangeWholeDocument(text=body)],
                )
            )
            await asyncio.wait_for(waiting, 10)
            figures["diagnostics"].append((time.perf_counter() - started) * 1000)
        await client.shutdown_session()
    finally:
        await client.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args()
    print(f"language server, {args.modules} service modules; {machine()}")
    with workdir(args.keep, "splice-bench-lsp-") as root:
        files = make_workspace(root, args.modules)
        bare = min(bare_parse(files) for _ in range(3))
        indexed, services = min(index_in_process(root, files) for _ in range(3))
        figures = asyncio.run(drive(root, args.requests, args.changes))
    bare_ms = bare * 1000
    completion, changes = figures["completion"], figures["diagnostics"]
    rows = [
        ["bare ast.parse of the workspace (baseline)", bare_ms, 1.0, ""],
        ["workspace index, in process", indexed * 1000, ratio(indexed, bare), f"{services} services"],
        ["server: initialized -> first completion", figures["start"][0] * 1000, ratio(figures["start"][0], bare), ""],
        ["completion in invoke(' p50", median(completion), ratio(median(completion), bare_ms), ""],
        [
            "completion in invoke(' p95",
            percentile(completion, 95),
            ratio(percentile(completion, 95), bare_ms),
            f"target < {COMPLETION_TARGET_MS:g} ms; {int(figures['items'][0])} items",
        ],
        ["didChange -> diagnostics p50", median(changes), ratio(median(changes), bare_ms), ""],
        [
            "didChange -> diagnostics p95",
            percentile(changes, 95),
            ratio(percentile(changes, 95), bare_ms),
            f"target < {DIAGNOSTICS_TARGET_MS:g} ms",
        ],
    ]
    print()
    print(table(["measurement", "ms", "ratio to bare parse", "note"], rows))
    print()
    base = ("bare ast.parse of the workspace", bare_ms)
    p95 = percentile(completion, 95)
    summary(f"lsp, completion p95 ({args.modules} modules)", p95, "ms", base, f"<= {COMPLETION_TARGET_MS:g} ms")
    p95 = percentile(changes, 95)
    summary(
        f"lsp, didChange to diagnostics p95 ({args.modules} modules)",
        p95,
        "ms",
        base,
        f"<= {DIAGNOSTICS_TARGET_MS:g} ms",
    )
    return 0


if __name__ == "__main__":
    run(main)
