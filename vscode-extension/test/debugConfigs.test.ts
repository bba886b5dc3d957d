import assert from "node:assert/strict";
import { test } from "node:test";
import { AdminError } from "../src/lib/admin";
import { attachConfiguration, attachConfigurations } from "../src/lib/debugConfigs";
import { chooseInterpreter, initializationOptions } from "../src/lib/lsp";

const point = { server: "server1", pid: 42, host: "0.0.0.0", port: 5680, remote_root: "/c/server1/work/deployed" };

test("an attach configuration as splice vscode launch writes it", () => {
  assert.deepEqual(attachConfiguration(point, "/w"), {
    name: "Splice: attach to server1",
    type: "debugpy",
    request: "attach",
    connect: { host: "127.0.0.1", port: 5680 },
    pathMappings: [{ localRoot: "/w", remoteRoot: "/c/server1/work/deployed" }],
    justMyCode: true,
    stopAllThreadsOnSuspend: false,
  });
});

test("one configuration per listening server; a note for the others", () => {
  const { configurations, notes } = attachConfigurations([
    { server: "server1", url: "u1", info: { server: "server1", enabled: true, attach_points: [point] } },
    { server: "server2", url: "u2", info: { server: "server2", enabled: false, attach_points: [] } },
    { server: "server3", url: "u3", error: new AdminError(0, "unreachable", "GET u3: ECONNREFUSED") },
  ], "/w");
  assert.deepEqual(configurations.map((c) => c.name), ["Splice: attach to server1"]);
  assert.equal(notes.length, 2);
  assert.match(notes[0], /^server2: debugging is off/);
  assert.equal(notes[1], "server3: GET u3: ECONNREFUSED");
});

test("a configuration per worker of a server of several, once each though every worker lists them all", () => {
  const workers = [1, 2].map((worker) => ({
    server: "server1",
    worker,
    member: `server1.w${worker}`,
    host: "127.0.0.1",
    port: 5580 + 100 * worker,
    remote_root: `/c/server1/workers/${worker}/work/deployed`,
  }));
  const info = { server: "server1", enabled: true, attach_points: workers };
  const { configurations, notes } = attachConfigurations([
    { server: "server1.w1", url: "u1", info },
    { server: "server1.w2", url: "u2", info },
  ], "/w");
  assert.deepEqual(
    configurations.map((c) => [c.name, c.connect.port, c.pathMappings[0].remoteRoot]),
    [
      ["Splice: attach to server1 worker 1", 5680, "/c/server1/workers/1/work/deployed"],
      ["Splice: attach to server1 worker 2", 5780, "/c/server1/workers/2/work/deployed"],
    ],
  );
  assert.deepEqual(notes, []);
});

const target = (over = {}) => ({ url: "http://h:1", token: "t", tokenSource: "secret storage" as const, clusterDir: undefined, ...over });
test("language server options: URL and token, else the cluster directory", () => {
  assert.deepEqual(initializationOptions({ clusterUrl: "http://h:1" }, target()), { splice: { clusterUrl: "http://h:1", token: "t" } });
  assert.deepEqual(initializationOptions({ clusterUrl: "" }, target({ clusterDir: "/c" })), { splice: { clusterDir: "/c" } });
  assert.deepEqual(initializationOptions({ clusterUrl: "http://h:1" }, target({ clusterDir: "/c", token: undefined })), { splice: { clusterUrl: "http://h:1" } });
  assert.deepEqual(initializationOptions({ clusterUrl: "" }, undefined), { splice: {} });
});

test("interpreter: the Python extension's, else the setting, else python3", () => {
  assert.equal(chooseInterpreter("/venv/bin/python", "/usr/bin/python3.12"), "/venv/bin/python");
  assert.equal(chooseInterpreter(undefined, "/usr/bin/python3.12"), "/usr/bin/python3.12");
  assert.equal(chooseInterpreter("", " "), "python3");
});
