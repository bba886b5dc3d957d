/**
 * The admin client, the deploy loop and the debug configurations against a real Splice cluster: one server
 * started with the repository's `splice` command (`$SPLICE_BIN`, default `../.venv/bin/splice`).
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { AdminClient, AdminError, Problem } from "../src/lib/admin";
import { readClusterDir } from "../src/lib/cluster";
import { attachConfigurations, clusterDebugStates } from "../src/lib/debugConfigs";
import { Deployer, ModuleFile } from "../src/lib/deployer";
import { problemDiagnostic, StatusSummary } from "../src/lib/outcome";
import { deployable } from "../src/lib/paths";
import { resolveTarget } from "../src/lib/settings";
import { freePort, portIsFree, SERVICE, startCluster, TestCluster } from "./helpers/cluster";

class RecordingUi {
  statuses: StatusSummary[] = [];
  busyLabels: string[] = [];
  problemsOf = new Map<string, Problem[]>();
  busy(label: string): void {
    this.busyLabels.push(label);
  }
  done(summary: StatusSummary): void {
    this.statuses.push(summary);
  }
  problems(file: string, problems: Problem[]): void {
    this.problemsOf.set(file, problems);
  }
}

describe("against a real Splice cluster", { timeout: 120_000 }, () => {
  let cluster: TestCluster;
  let dir = "";
  let client: AdminClient;
  let debugPort = 0;
  const project = "/project"; // the editor's project root; files need not exist for a deploy

  before(async () => {
    cluster = await startCluster();
    ({ dir, debugPort } = cluster);
    const target = await resolveTarget({ clusterUrl: "", clusterDir: dir }, undefined, undefined);
    assert.equal(target.url, cluster.url);
    assert.equal(target.token, cluster.token);
    client = new AdminClient(target.url, target.token);
  });

  after(() => cluster?.stop());

  test("the cluster directory names the token the server takes", async () => {
    const info = await readClusterDir(dir);
    assert.equal(info.token, (await readFile(path.join(dir, "admin-token"), "utf8")).trim());
    const cluster = await client.cluster();
    assert.deepEqual(cluster.servers.map((s) => s.name), ["server1"]);
  });

  test("a wrong token is refused with 401", async () => {
    await assert.rejects(new AdminClient(client.baseUrl, "wrong").services(), (err: AdminError) =>
      err instanceof AdminError && err.status === 401 && err.code === "unauthorized");
  });

  test("saves coalesce into one deploy; the service is listed and answers", async () => {
    const ui = new RecordingUi();
    const deployer = new Deployer(async () => client, ui, { delayMs: 50 });
    const file = path.join(project, "shop", "hello.py");
    const hit = deployable(file, [project], []);
    assert.deepEqual(hit, { root: project, path: "shop/hello.py" });
    for (const greeting of ["one", "two", "three"]) {
      deployer.saved({ file, root: project, path: hit!.path, source: SERVICE("shop.hello", greeting) });
    }
    await deployer.idle();
    assert.equal(ui.statuses.length, 1, "three quick saves, one deploy");
    const [summary] = ui.statuses;
    assert.equal(summary.level, "ok", summary.lines.join("\n"));
    assert.equal(summary.text, "$(check) Splice hello.py: server1 ✓");
    assert.deepEqual(ui.problemsOf.get(file), []);

    const services = await client.services();
    const hello = services.find((s) => s.name === "shop.hello");
    assert.ok(hello, JSON.stringify(services));
    assert.equal(hello.path, "shop/hello.py");
    const answer = await client.invoke("shop.hello", { n: 1 });
    assert.deepEqual(answer.payload, { greeting: "three", input: { n: 1 } });
    deployer.dispose();
  });

  test("a save deploys at once; saves during its deploy become one more deploy, with the last source", async () => {
    const ui = new RecordingUi();
    const deployer = new Deployer(async () => client, ui);
    const file = path.join(project, "shop", "now.py");
    deployer.saved({ file, root: project, path: "shop/now.py", source: SERVICE("shop.now", "one") });
    assert.deepEqual(ui.busyLabels, ["now.py"], "the deploy started before saved() returned, without a timer");
    for (const greeting of ["two", "three"]) {
      deployer.saved({ file, root: project, path: "shop/now.py", source: SERVICE("shop.now", greeting) });
    }
    await deployer.idle();
    assert.equal(ui.statuses.length, 2, "the first save, then the last of those made during its deploy");
    for (const summary of ui.statuses) {
      assert.equal(summary.level, "ok", summary.lines.join("\n"));
      assert.match(summary.lines.at(-1)!,
        /^  saved at \d\d:\d\d:\d\d\.\d{3}, answered \d+ ms later: waited \d+ ms .* ms for every server to deploy \(the server's own \d+ ms\)$/);
    }
    assert.deepEqual((await client.invoke("shop.now", {})).payload, { greeting: "three", input: {} });
    deployer.dispose();
  });

  test("a save deploys as it begins; its saved event deploys again only a text edited while saving", async () => {
    const ui = new RecordingUi();
    const deployer = new Deployer(async () => client, ui);
    const file = path.join(project, "shop", "early.py");
    const module = (greeting: string): ModuleFile => ({ file, root: project, path: "shop/early.py", source: SERVICE("shop.early", greeting) });
    deployer.saving(module("one"));
    assert.deepEqual(ui.busyLabels, ["early.py"], "the deploy started as the save began");
    deployer.saved(module("one"));
    await deployer.idle();
    assert.equal(ui.statuses.length, 1, "the text written was the text sent: one deploy");
    assert.match(ui.statuses[0].lines.at(-1)!, /^  save began at \d\d:\d\d:\d\d\.\d{3}, answered \d+ ms later: /);

    deployer.saving(module("two"));
    deployer.saved(module("two, formatted"));
    await deployer.idle();
    assert.equal(ui.statuses.length, 3, "the text sent, then the text written");
    assert.match(ui.statuses[2].lines.at(-1)!, /^  saved at /);
    assert.deepEqual((await client.invoke("shop.early", {})).payload, { greeting: "two, formatted", input: {} });

    deployer.saved(module("two, formatted"));
    await deployer.idle();
    assert.equal(ui.statuses.length, 4, "a saved event without a will-save event deploys");
    deployer.dispose();
  });

  test("warming up asks for the client once and never throws, reachable or not", async () => {
    const asked: boolean[] = [];
    await new Deployer(async (fresh) => (asked.push(fresh), client), new RecordingUi()).warm();
    assert.deepEqual(asked, [false]);
    const gone = new AdminClient(`http://127.0.0.1:${await freePort()}`, "t");
    await new Deployer(async () => gone, new RecordingUi()).warm();
    await new Deployer(async () => { throw new Error("no cluster configured"); }, new RecordingUi()).warm();
  });

  test("a kept client refused with 401 is replaced by a fresh one, once, and the save deploys", async () => {
    const ui = new RecordingUi();
    const asked: boolean[] = [];
    const stale = new AdminClient(client.baseUrl, "a-token-since-rotated");
    const deployer = new Deployer(async (fresh) => (asked.push(fresh), fresh ? client : stale), ui);
    const result = await deployer.deploy([{ file: "/project/shop/kept.py", root: project, path: "shop/kept.py", source: SERVICE("shop.kept", "k") }]);
    assert.ok(result.ok, ui.statuses.map((s) => s.lines.join("\n")).join("\n"));
    assert.deepEqual(asked, [false, true]);
    assert.equal(ui.statuses.length, 1);

    const refused: boolean[] = [];
    const wrong = new Deployer(async (fresh) => (refused.push(fresh), stale), ui);
    const again = await wrong.deploy([{ file: "/project/shop/kept.py", root: project, path: "shop/kept.py", source: SERVICE("shop.kept", "k") }]);
    assert.ok(!again.ok && again.error.status === 401);
    assert.deepEqual(refused, [false, true], "asked once more, not in a loop");
  });

  test("a refused deploy becomes a diagnostic at its line and column, cleared by the next good deploy", async () => {
    const ui = new RecordingUi();
    const deployer = new Deployer(async () => client, ui);
    const file = path.join(project, "shop", "broken.py");
    const broken = "import os\n\n\ndef f(:\n    return os\n";
    const module: ModuleFile = { file, root: project, path: "shop/broken.py", source: broken };
    const result = await deployer.deploy([module]);
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.error.status === 422 && result.error.code === "deploy_failed");
    const problems = ui.problemsOf.get(file);
    assert.equal(problems?.length, 1);
    assert.equal(problems![0].path, "shop/broken.py");
    const d = problemDiagnostic(problems![0], broken.split("\n"));
    assert.deepEqual([d.startLine, d.startCharacter], [3, 6], JSON.stringify(problems));
    assert.equal(d.code, "syntax");
    assert.match(d.message, /SyntaxError/);
    assert.match(ui.statuses[0].text, /^\$\(error\) Splice broken\.py: refused, shop\/broken\.py:4:7$/);

    const importError = await deployer.deploy([{ ...module, source: "x = 1\nimport no_such_module_here\n" }]);
    assert.equal(importError.ok, false);
    const [p] = ui.problemsOf.get(file)!;
    assert.deepEqual([p.line, p.column, p.kind], [2, null, "import"]);
    assert.match(p.traceback ?? "", /no_such_module_here/);

    const fixed = await deployer.deploy([{ ...module, source: SERVICE("shop.fixed", "ok") }]);
    assert.ok(fixed.ok);
    assert.deepEqual(ui.problemsOf.get(file), []);
    assert.ok((await client.services()).some((s) => s.name === "shop.fixed"));
  });

  test("undeploy removes the module's services", async () => {
    await client.deploy([{ path: "shop/gone.py", source: SERVICE("shop.gone", "x") }]);
    const answer = await client.undeploy(["shop/gone.py"]);
    assert.equal(answer.status, "undeployed");
    assert.deepEqual(answer.services, ["shop.gone"]);
    assert.ok(!(await client.services()).some((s) => s.name === "shop.gone"));
  });

  test("debug configurations: none while off, one per server once enabled", async () => {
    let { configurations, notes } = attachConfigurations(await clusterDebugStates(client), project);
    assert.deepEqual(configurations, []);
    assert.match(notes[0], /server1: debugging is off/);
    await client.setDebug(true);
    ({ configurations, notes } = attachConfigurations(await clusterDebugStates(client), project));
    assert.deepEqual(notes, []);
    assert.deepEqual(configurations, [{
      name: "Splice: attach to server1",
      type: "debugpy",
      request: "attach",
      connect: { host: "127.0.0.1", port: debugPort },
      pathMappings: [{ localRoot: project, remoteRoot: path.join(dir, "server1", "work", "deployed") }],
      justMyCode: true,
      stopAllThreadsOnSuspend: false,
    }]);
    assert.equal(await portIsFree(debugPort), false, "debugpy listens on the attach point");
  });
});

test("an unreachable cluster is an AdminError with status 0", async () => {
  const port = await freePort();
  await assert.rejects(new AdminClient(`http://127.0.0.1:${port}`, "t", { timeoutMs: 5000 }).services(), (err: AdminError) =>
    err instanceof AdminError && err.status === 0 && err.code === "unreachable" && /ECONNREFUSED/.test(err.message));
});
