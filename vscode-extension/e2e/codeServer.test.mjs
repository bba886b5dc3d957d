/**
 * End-to-end: the packaged extension (splice-vscode-*.vsix) in a real VS Code (code-server, offline), driven
 * by playwright-core with Debian's chromium, against a real two-server quickstart cluster.
 *
 * Needs what `bash e2e/setup.sh` installs into $SPLICE_E2E_CACHE (default ~/.cache/splice-e2e) and the .vsix
 * (`npm run build && npm run package`); `npm run test:e2e` does all of it. The cluster command is $SPLICE_BIN
 * (default ../.venv/bin/splice), the language server's interpreter $SPLICE_PYTHON (default ../.venv/bin/python).
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const EXT = path.resolve(HERE, "..");
const REPO = path.resolve(EXT, "..");
const CACHE = process.env.SPLICE_E2E_CACHE ?? path.join(homedir(), ".cache", "splice-e2e");
const NODE24 = process.env.SPLICE_E2E_NODE24 ?? path.join(CACHE, "node24/node_modules/node/bin/node");
const CODE_SERVER = path.join(CACHE, "code-server/node_modules/code-server/out/node/entry.js");
const PLAYWRIGHT = process.env.SPLICE_E2E_PLAYWRIGHT ?? path.join(CACHE, "playwright/node_modules/playwright-core");
const CHROMIUM = process.env.SPLICE_E2E_CHROMIUM ?? "/usr/bin/chromium";
const SPLICE = path.resolve(EXT, process.env.SPLICE_BIN ?? "../.venv/bin/splice");
const PYTHON = path.resolve(EXT, process.env.SPLICE_PYTHON ?? "../.venv/bin/python");
const VSCE = path.join(EXT, "node_modules/.bin/vsce");
const VSIX =
  process.env.SPLICE_E2E_VSIX ??
  path.join(EXT, readdirSync(EXT).filter((f) => /^splice-vscode-.*\.vsix$/.test(f)).sort().pop() ?? "splice-vscode.vsix");

const SERVICE = (v) => `from splice.server import Service


class Hello(Service):
    name = "demo.hello"

    def handle(self):
        self.response.payload = {"v": ${v}}
`;
// Deployed straight to the cluster and absent from the workspace: completion listing it comes from the cluster.
const OTHER = `from splice.server import Service


class Ping(Service):
    name = "other.ping"

    def handle(self):
        self.response.payload = {"pong": True}
`;

const timings = [];
let phaseStart = Date.now();
function phase(name) {
  const now = Date.now();
  timings.push([name, now - phaseStart]);
  phaseStart = now;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function portIsFree(port) {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

async function until(what, fn, { timeout = 30_000, interval = 200 } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

async function admin(url, token, method, route, body) {
  const res = await fetch(`${url}/splice/admin/${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** A package.json-only stand-in for ms-python.debugpy, which the extension depends on and which cannot be downloaded here. */
async function stubDebugpy(dir) {
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, "package.json"),
    JSON.stringify({
      name: "debugpy",
      displayName: "Python Debugger (stand-in for the Splice e2e test)",
      description: "Stand-in: satisfies splice-vscode's extensionDependencies offline.",
      publisher: "ms-python",
      version: "0.0.1",
      license: "MIT",
      engines: { vscode: "^1.91.0" },
    }),
  );
  await writeFile(path.join(dir, "README.md"), "Stand-in for ms-python.debugpy in the Splice end-to-end test.\n");
  await writeFile(path.join(dir, "LICENSE"), "MIT\n");
  const vsix = path.join(dir, "ms-python.debugpy-stub.vsix");
  await run(VSCE, ["package", "--allow-missing-repository", "--skip-license", "-o", vsix], { cwd: dir });
  return vsix;
}

test("the packaged extension in code-server against a real cluster", { timeout: 300_000 }, async (t) => {
  for (const [what, file] of [["Node 24", NODE24], ["code-server", CODE_SERVER], ["playwright-core", PLAYWRIGHT],
    ["chromium", CHROMIUM], ["splice", SPLICE], ["python", PYTHON], ["the .vsix (npm run package)", VSIX], ["vsce", VSCE]]) {
    assert.ok(existsSync(file), `${what} is not at ${file}: run 'bash e2e/setup.sh' (and npm run build && npm run package)`);
  }
  const require = createRequire(path.join(PLAYWRIGHT, "package.json"));
  const { chromium } = require(PLAYWRIGHT);

  const tmp = await mkdtemp(path.join(tmpdir(), "splice-e2e-"));
  const keep = await mkdtemp(path.join(tmpdir(), "splice-e2e-shots-"));
  const clusterDir = path.join(tmp, "cluster");
  const ws = path.join(tmp, "workspace");
  let clusterStarted = false;
  let codeServer;
  let browser;
  let page;
  const csLog = [];
  try {
    // --- the cluster ---------------------------------------------------------------------------------------
    let port;
    do port = await freePort();
    while (port >= 65000 || !(await portIsFree(port + 1)) || !(await portIsFree(port + 2)));
    await run(SPLICE, ["quickstart", "create", clusterDir, "--port", String(port), "--servers", "2", "--no-load-balancer"]);
    await appendFile(path.join(clusterDir, "cluster.toml"), `\n[debug]\nport = ${await freePort()}\n`);
    clusterStarted = true;
    await run(SPLICE, ["start", clusterDir], { timeout: 90_000 });
    const token = (await readFile(path.join(clusterDir, "admin-token"), "utf8")).trim();
    const servers = [`http://127.0.0.1:${port + 1}`, `http://127.0.0.1:${port + 2}`];
    await admin(servers[0], token, "POST", "deploy", {
      modules: [{ path: "shop/hello.py", source: SERVICE(1) }, { path: "other/ping.py", source: OTHER }],
    });
    const invokeAll = () =>
      Promise.all(servers.map((s) => admin(s, token, "POST", "invoke", { service: "demo.hello", payload: {} }).then((r) => r.payload)));
    await until("v1 on every server", async () => (await invokeAll()).every((p) => p?.v === 1));
    phase("cluster: create, start, deploy v1");

    // --- the workspace ---------------------------------------------------------------------------------------
    await mkdir(path.join(ws, ".vscode"), { recursive: true });
    await mkdir(path.join(ws, "shop"), { recursive: true });
    await writeFile(path.join(ws, "shop/hello.py"), SERVICE(1));
    const editorQuiet = {
      "editor.autoClosingBrackets": "never",
      "editor.autoClosingQuotes": "never",
      "editor.autoIndent": "none",
      "editor.autoSurround": "never",
      "editor.formatOnSave": false,
      "editor.formatOnType": false,
      "editor.acceptSuggestionOnEnter": "off",
      "editor.quickSuggestions": { other: false, comments: false, strings: false },
      "editor.suggestOnTriggerCharacters": false,
      "editor.parameterHints.enabled": false,
      "editor.hover.enabled": false,
      "editor.inlineSuggest.enabled": false,
      "files.autoSave": "off",
      "files.insertFinalNewline": false,
      "files.trimTrailingWhitespace": false,
    };
    const python = PYTHON;
    await writeFile(
      path.join(ws, ".vscode/settings.json"),
      JSON.stringify({ "splice.clusterDir": clusterDir, "splice.python": python, ...editorQuiet }, null, 2),
    );
    const userData = path.join(tmp, "user-data");
    const extensions = path.join(tmp, "extensions");
    await mkdir(path.join(userData, "User"), { recursive: true });
    await writeFile(
      path.join(userData, "User/settings.json"),
      JSON.stringify({
        "security.workspace.trust.enabled": false,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": false,
        "workbench.enableExperiments": false,
        "workbench.welcomePage.walkthroughs.openOnInstall": false,
        "extensions.ignoreRecommendations": true,
        "extensions.autoCheckUpdates": false,
        "extensions.autoUpdate": false,
        "telemetry.telemetryLevel": "off",
        "chat.disableAIFeatures": true,
        "update.mode": "none",
      }),
    );
    phase("workspace");

    // --- code-server -----------------------------------------------------------------------------------------
    const csEnv = { ...process.env, PATH: `${path.dirname(NODE24)}:${process.env.PATH}` };
    const cs = (args, opts = {}) => run(NODE24, [CODE_SERVER, "--user-data-dir", userData, "--extensions-dir", extensions, ...args], { env: csEnv, timeout: 120_000, ...opts });
    // ms-python.debugpy cannot be downloaded: install a stand-in first (see the report in e2e/README.md).
    if (!process.env.SPLICE_E2E_NO_STUB) await cs(["--install-extension", await stubDebugpy(path.join(tmp, "debugpy-stub"))]);
    const installed = await cs(["--install-extension", VSIX]);
    t.diagnostic(`install: ${installed.stdout.trim().split("\n").pop()}`);
    const list = (await cs(["--list-extensions", "--show-versions"])).stdout;
    assert.match(list, /splice\.splice-vscode@/);
    phase("code-server: install stub debugpy + the .vsix");

    const csPort = await freePort();
    codeServer = spawn(
      NODE24,
      [CODE_SERVER, "--auth", "none", "--bind-addr", `127.0.0.1:${csPort}`, "--disable-telemetry", "--disable-update-check",
        "--disable-workspace-trust", "--disable-getting-started-override", "--user-data-dir", userData, "--extensions-dir", extensions],
      { env: csEnv, detached: true, stdio: ["ignore", "pipe", "pipe"] },
    );
    codeServer.stdout.on("data", (d) => csLog.push(String(d)));
    codeServer.stderr.on("data", (d) => csLog.push(String(d)));
    await until("code-server to answer /healthz", async () => (await fetch(`http://127.0.0.1:${csPort}/healthz`)).ok, { timeout: 60_000 });
    phase("code-server: start");

    // --- the browser -----------------------------------------------------------------------------------------
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    await page.goto(`http://127.0.0.1:${csPort}/?folder=${encodeURIComponent(ws)}`);
    await page.waitForSelector(".monaco-workbench .part.statusbar", { timeout: 60_000 });
    await until("the explorer to show the workspace", async () => (await page.locator(".explorer-folders-view").count()) > 0, { timeout: 60_000 });
    phase("browser: workbench loaded");

    const editorText = async () =>
      (await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().innerText()).replace(/\u00a0/g, " ");
    const goTo = async (spec) => {
      await page.keyboard.press("Control+G");
      await page.waitForSelector(".quick-input-widget input", { state: "visible" });
      await page.keyboard.type(spec);
      await page.keyboard.press("Enter");
      await page.waitForSelector(".quick-input-widget", { state: "hidden" });
    };

    // Open shop/hello.py through Quick Open.
    await page.keyboard.press("Control+P");
    await page.waitForSelector(".quick-input-widget input", { state: "visible" });
    await page.keyboard.type("hello.py");
    await page.waitForSelector('.quick-input-list .monaco-list-row[aria-label*="hello.py"]', { timeout: 15_000 });
    await page.keyboard.press("Enter");
    await until("hello.py in the editor", async () => (await editorText()).includes('{"v": 1}'), { timeout: 20_000 });
    // The extension is active once its status bar item or output channel shows; the language server too.
    phase("editor: open shop/hello.py");

    // --- deploy on save --------------------------------------------------------------------------------------
    const source = SERVICE(1).split("\n");
    const lineNo = source.findIndex((l) => l.includes('{"v": 1}')) + 1;
    const col = source[lineNo - 1].indexOf('1}') + 1;
    await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().click();
    await goTo(`${lineNo}:${col}`);
    await page.keyboard.press("Shift+ArrowRight");
    await page.keyboard.type("2");
    await until("the edit", async () => (await editorText()).includes('{"v": 2}'), { timeout: 5_000 });
    phase("editor: edit v1 -> v2");
    const savedAt = Date.now();
    await page.keyboard.press("Control+S");
    await until("every server to answer {v: 2}", async () => (await invokeAll()).every((p) => p?.v === 2), { timeout: 30_000, interval: 50 });
    const deployMs = Date.now() - savedAt;
    t.diagnostic(`save -> every server answers {"v": 2}: ${deployMs} ms`);
    phase("deploy on save: Ctrl+S -> v2 on every server");
    const statusBar = await page.locator(".part.statusbar").innerText();
    t.diagnostic(`status bar: ${statusBar.replace(/\s+/g, " ")}`);

    // --- a refused deploy is a diagnostic at its line --------------------------------------------------------
    const badLine = lineNo + 1;
    await goTo(`${lineNo}`);
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await page.keyboard.type("        x = = 1");
    await until("the syntax error in the editor", async () => (await editorText()).includes("x = = 1"), { timeout: 5_000 });
    await page.keyboard.press("Control+S");
    await page.keyboard.press("Control+Shift+M");
    const problems = page.locator(".markers-panel");
    const problemText = await until(
      `a 'splice deploy' problem at line ${badLine}`,
      async () => {
        const text = (await problems.innerText()).replace(/\s+/g, " ");
        return text.includes("splice deploy") && text.includes(`[Ln ${badLine},`) ? text : false;
      },
      { timeout: 30_000 },
    );
    t.diagnostic(`problems: ${problemText}`);
    assert.ok((await page.locator(".monaco-editor .squiggly-error").count()) > 0, "no error squiggle in the editor");
    assert.ok((await invokeAll()).every((p) => p?.v === 2), "the refused deploy changed what the servers run");
    phase("refused deploy: Ctrl+S -> diagnostic in Problems");

    // --- completion of the cluster's services ----------------------------------------------------------------
    await page.locator(".editor-group-container.active .monaco-editor .view-lines").first().click();
    await goTo(`${badLine}`);
    await page.keyboard.press("Home"); // to the first non-blank character
    await page.keyboard.press("Shift+End");
    await page.keyboard.type("x = self.invoke('");
    await page.keyboard.press("Control+Space");
    const suggest = page.locator(".editor-widget.suggest-widget");
    const suggestions = await until(
      "completion to list demo.hello and other.ping",
      async () => {
        if (!(await suggest.isVisible())) {
          await page.keyboard.press("Escape");
          await page.keyboard.press("Control+Space");
          return false;
        }
        const text = await suggest.innerText();
        return text.includes("other.ping") && text.includes("demo.hello") ? text : false;
      },
      { timeout: 30_000, interval: 1000 },
    );
    t.diagnostic(`completion: ${suggestions.replace(/\s+/g, " ")}`);
    phase("completion in self.invoke(' lists the cluster's services");

    const shot = path.join(keep, "last-run.png");
    await page.screenshot({ path: shot });
    t.diagnostic(`screenshot: ${shot}`);
    console.log(`screenshot: ${shot}`);
    phase("screenshot");
  } catch (err) {
    phase(`FAILED: ${String(err?.message ?? err).slice(0, 80)}`);
    if (page) {
      const shot = path.join(keep, "failure.png");
      await page.screenshot({ path: shot }).catch(() => undefined);
      console.log(`failure screenshot: ${shot}`);
    }
    console.log(`code-server output:\n${csLog.join("").slice(-3000)}`);
    // The extension's output channel (its deploys and the language client's errors).
    const logs = await run("find", [path.join(tmp, "user-data", "logs"), "-name", "Splice.log"]).catch(() => ({ stdout: "" }));
    for (const file of logs.stdout.split("\n").filter(Boolean)) {
      console.log(`${file}:\n${(await readFile(file, "utf8")).split("\n").slice(-40).join("\n")}`);
    }
    throw err;
  } finally {
    await browser?.close().catch(() => undefined);
    phase("teardown: browser");
    if (codeServer?.pid) {
      try {
        process.kill(-codeServer.pid, "SIGTERM");
        await new Promise((r) => setTimeout(r, 500));
        process.kill(-codeServer.pid, "SIGKILL");
      } catch {
        // the group is gone already
      }
    }
    phase("teardown: code-server");
    if (clusterStarted) await run(SPLICE, ["stop", clusterDir], { timeout: 60_000 }).catch((e) => console.log(`splice stop: ${e}`));
    if (process.env.SPLICE_E2E_KEEP) console.log(`kept: ${tmp}`);
    else await rm(tmp, { recursive: true, force: true });
    phase("teardown: cluster stop, rm");
    const total = timings.reduce((s, [, ms]) => s + ms, 0);
    console.log(["timings (ms):", ...timings.map(([n, ms]) => `  ${String(ms).padStart(6)}  ${n}`), `  ${String(total).padStart(6)}  total`].join("\n"));
  }
});
