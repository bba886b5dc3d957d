import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { ClusterDirError, clusterUrlFromToml, parseClusterToml, readClusterDir } from "../src/lib/cluster";

/** What `splice quickstart create` writes, and a user's edits the hand-written reader refused. */
const QUICKSTART = `# Splice cluster configuration; see 'splice --help'.
[cluster]
name = "shop"
odb = "sqlite+aiosqlite:///odb.sqlite"
redis = ""  # the cluster bus; empty: servers call each other over HTTP

[deploy]
max_module_bytes = 1048576
import_timeout = 5.0

[pickup]
dirs = ["pickup", 'b#c']

[load_balancer]
host = "127.0.0.1"
port = 17_010

[[servers]]
name = "server1"
host = "127.0.0.1"
port = 17011
`;

const cases: Array<[string, string, string | undefined]> = [
  ["the load balancer wins", '[load_balancer]\nhost = "10.0.0.1"\nport = 17010\n[[servers]]\nport = 17011', "http://10.0.0.1:17010"],
  ["else the first server", '[[servers]]\nname = "a"\nhost = "127.0.0.1"\nport = 17011\n[[servers]]\nport = 17012', "http://127.0.0.1:17011"],
  ["a wildcard host means the loopback", '[[servers]]\nhost = "0.0.0.0"\nport = 1', "http://127.0.0.1:1"],
  ["an IPv6 host is bracketed", '[[servers]]\nhost = "::1"\nport = 2', "http://[::1]:2"],
  ["no host: the loopback", "[[servers]]\nport = 3", "http://127.0.0.1:3"],
  ["nothing to reach", '[cluster]\nname = "x"', undefined],
  ["what quickstart writes", QUICKSTART, "http://127.0.0.1:17010"],
  ["an inline table", 'load_balancer = { host = "::1", port = 9 }', "http://[::1]:9"],
  ["an array of inline tables over lines", 'servers = [\n  { name = "a", port = 4 },\n  { port = 5 },\n]', "http://127.0.0.1:4"],
  ["a dotted key", "load_balancer.port = 6", "http://127.0.0.1:6"],
  ["a port that is no number", '[[servers]]\nport = "17011"', undefined],
  ["a servers table, not an array", "[servers]\nport = 7", undefined],
];
for (const [name, toml, url] of cases) {
  test(`cluster URL: ${name}`, () => assert.equal(clusterUrlFromToml(parseClusterToml(toml)), url));
}

for (const [bad, line] of [["[cluster\nname = 'x'", 1], ['x = 1\ny = "unclosed', 2], ["a = 1\na = 2", 2]] as const) {
  test(`a syntax error says its line: ${JSON.stringify(bad)}`, () => {
    assert.throws(() => parseClusterToml(bad), (err: Error) =>
      err instanceof ClusterDirError && err.message.startsWith(`line ${line}: `) && !err.message.includes("\n"));
  });
}

test("a cluster directory: URL and token", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "splice-dir-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, "cluster.toml"), "[[servers]]\nport = 17011\n");
  assert.deepEqual(await readClusterDir(dir), { url: "http://127.0.0.1:17011", token: undefined });
  await writeFile(path.join(dir, "admin-token"), "s3cret\n");
  assert.deepEqual(await readClusterDir(dir), { url: "http://127.0.0.1:17011", token: "s3cret" });
});

test("a directory without cluster.toml is refused with its path", async () => {
  await assert.rejects(readClusterDir("/nonexistent/splice"), (err: Error) =>
    err instanceof ClusterDirError && err.message.includes("/nonexistent/splice/cluster.toml"));
});

test("a cluster.toml that is no TOML is refused with its path and line", async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), "splice-dir-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, "cluster.toml"), "[[servers]]\nport = \n");
  await assert.rejects(readClusterDir(dir), (err: Error) =>
    err instanceof ClusterDirError && err.message.startsWith(`${path.join(dir, "cluster.toml")}: line 2: `));
});
