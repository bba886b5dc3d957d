/**
 * The shipped bundle (`dist/extension.js`) activated against a stand-in `vscode` module and a real Splice
 * cluster: a save deploys, a broken save becomes a diagnostic, the commands and the debug provider work.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { SERVICE, startCluster, TestCluster } from "./helpers/cluster";
import { document, StandIn } from "./helpers/vscodeStandIn";

const BUNDLE = path.resolve(__dirname, "../../dist/extension.js");

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe("the extension in a stand-in VS Code, against a real cluster", { timeout: 120_000 }, () => {
  let cluster: TestCluster;
  let vscode: StandIn;
  let uninstall: () => void;
  let extension: { activate(c: unknown): Promise<void>; deactivate(): Promise<void> };
  const ws = "/workspace";

  before(async () => {
    cluster = await startCluster();
    vscode = new StandIn(ws, { clusterDir: cluster.dir, "languageServer.enabled": false });
    uninstall = vscode.install();
    extension = require(BUNDLE);
    await extension.activate(vscode.context());
  });

  after(async () => {
    await extension?.deactivate();
    uninstall?.();
    await cluster?.stop();
  });

  test("activation registers every command and a debugpy configuration provider", () => {
    for (const id of ["splice.toggleDeployOnSave", "splice.setToken", "splice.deployFile", "splice.deployFolder",
      "splice.undeployFile", "splice.invokeService", "splice.showCluster", "splice.attachCluster"]) {
      assert.ok(vscode.commands.has(id), id);
    }
    assert.ok(vscode.debugProviders.has("debugpy"));
    assert.equal(vscode.statusBar.text, "$(cloud-upload) Splice");
  });

  test("a save deploys; the status bar shows each server's outcome", async () => {
    const file = path.join(ws, "shop", "hello.py");
    const doc = document(file, SERVICE("shop.hello", "hi"));
    vscode.textDocuments.push(doc);
    vscode.save(doc);
    vscode.save(doc);
    const text = await until("the deploy", () => (vscode.statusBar.text.includes("✓") ? vscode.statusBar.text : undefined));
    assert.equal(text, "$(check) Splice hello.py: server1 ✓");
    assert.ok(vscode.output.some((l) => l.includes("shop/hello.py v1: shop.hello")), vscode.output.join("\n"));
  });

  test("a broken save becomes a diagnostic; the next good save clears it", async () => {
    const file = path.join(ws, "shop", "broken.py");
    const broken = document(file, "x = 1\nif x\n    pass\n");
    vscode.textDocuments.push(broken);
    vscode.save(broken);
    const [d] = await until("the diagnostic", () => vscode.diagnostics.get(file));
    // column 5 is just past "if x": the last character is marked
    assert.deepEqual([d.range.startLine, d.range.startCharacter, d.range.endCharacter], [1, 3, 4]);
    assert.match(d.message, /SyntaxError/);
    assert.equal(d.source, "splice deploy");
    assert.match(vscode.statusBar.text, /^\$\(error\) Splice broken\.py: refused, shop\/broken\.py:2:5$/);

    vscode.save(document(file, SERVICE("shop.broken", "fixed")));
    await until("the diagnostic to clear", () => !vscode.diagnostics.has(file));
  });

  test("a save deploys as it begins, once; with format on save, once it is written", async () => {
    const file = path.join(ws, "shop", "begin.py");
    const timingLines = () => vscode.output.filter((l) => /^  (save began|saved) at /.test(l));
    const before = timingLines().length;
    vscode.save(document(file, SERVICE("shop.begin", "one")));
    await until("the deploy", () => timingLines().length > before || undefined);
    await sleep(300);
    assert.deepEqual(timingLines().slice(before).map((l) => l.split(" at ")[0]), ["  save began"]);

    vscode.sections.editor = { formatOnSave: true };
    try {
      vscode.save(document(file, SERVICE("shop.begin", "two")), document(file, SERVICE("shop.begin", "two, formatted")));
      await until("the deploy", () => timingLines().length > before + 1 || undefined);
      await sleep(300);
      assert.deepEqual(timingLines().slice(before).map((l) => l.split(" at ")[0]), ["  save began", "  saved"]);
    } finally {
      delete vscode.sections.editor;
    }
    assert.ok(vscode.output.some((l) => l.includes("shop/begin.py v2: shop.begin")), vscode.output.join("\n"));
  });

  test("files outside the project or excluded are not deployed; toggling turns deploy on save off", async () => {
    const before = vscode.output.length;
    vscode.save(document("/elsewhere/x.py", "x = 1\n"));
    vscode.save(document(path.join(ws, "tests", "test_x.py"), "x = (\n"));
    await vscode.commands.get("splice.toggleDeployOnSave")!();
    assert.equal(vscode.statusBar.text, "$(circle-slash) Splice");
    vscode.save(document(path.join(ws, "shop", "off.py"), "x = (\n"));
    await sleep(400);
    assert.equal(vscode.output.length, before, vscode.output.slice(before).join("\n"));
    await vscode.commands.get("splice.toggleDeployOnSave")!();
    assert.equal(vscode.statusBar.text, "$(cloud-upload) Splice");
  });

  test("invoke a service: quick pick, payload, the answer in an untitled JSON document", async () => {
    vscode.answers.push({ label: "shop.hello" }, '{"n": 2}');
    await vscode.commands.get("splice.invokeService")!();
    assert.deepEqual(vscode.errors, []);
    const last = vscode.opened[vscode.opened.length - 1];
    assert.equal(last.language, "json");
    assert.deepEqual(JSON.parse(last.content!), { greeting: "hi", input: { n: 2 } });
  });

  test("the debug provider, and attaching to the cluster after enabling debugging", async () => {
    const provider = vscode.debugProviders.get("debugpy")!;
    assert.deepEqual(await provider.provideDebugConfigurations(undefined), []);
    vscode.answers.push("Enable Debugging");
    await vscode.commands.get("splice.attachCluster")!();
    assert.deepEqual(vscode.errors, []);
    assert.equal(vscode.started.length, 1);
    const [configuration] = vscode.started as Array<Record<string, unknown>>;
    assert.equal(configuration.name, "Splice: attach to server1");
    assert.deepEqual(configuration.connect, { host: "127.0.0.1", port: cluster.debugPort });
    assert.deepEqual(configuration.pathMappings, [{ localRoot: ws, remoteRoot: path.join(cluster.dir, "server1", "work", "deployed") }]);
    const provided = await provider.provideDebugConfigurations(undefined);
    assert.deepEqual(provided, [configuration]);
  });

  test("Open Dashboard opens the quickstart's dashboard; the status bar's tooltip links to it", async () => {
    await vscode.commands.get("splice.openDashboard")!();
    assert.deepEqual(vscode.errors, []);
    const toml = await readFile(path.join(cluster.dir, "dashboard", "dashboard.toml"), "utf8");
    const port = /^port = (\d+)$/m.exec(toml)![1];
    assert.deepEqual(vscode.external, [`http://127.0.0.1:${port}`]);
    const tooltip = vscode.statusBar.tooltip as { value: string; isTrusted: unknown };
    assert.match(tooltip.value, /\[\$\(link-external\) Open Dashboard\]\(command:splice\.openDashboard\)/);
    assert.deepEqual(tooltip.isTrusted, { enabledCommands: ["splice.openDashboard"] });
  });

  test("undeploy the current file", async () => {
    vscode.textDocuments.push(document(path.join(ws, "shop", "hello.py"), ""));
    vscode.answers.push("Undeploy");
    await vscode.commands.get("splice.undeployFile")!();
    assert.deepEqual(vscode.errors, []);
    assert.equal(vscode.statusBar.text, "$(check) Splice undeployed hello.py: server1 ✓");
  });
});
