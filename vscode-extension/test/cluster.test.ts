import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { ClusterDirError, clusterUrlFromToml, readClusterDir } from "../src/lib/cluster";
import { parseToml } from "../src/lib/toml";

const cases: Array<[string, string, string | undefined]> = [
  ["the load balancer wins", '[load_balancer]\nhost = "10.0.0.1"\nport = 17010\n[[servers]]\nport = 17011', "http://10.0.0.1:17010"],
  ["else the first server", '[[servers]]\nname = "a"\nhost = "127.0.0.1"\nport = 17011\n[[servers]]\nport = 17012', "http://127.0.0.1:17011"],
  ["a wildcard host means the loopback", '[[servers]]\nhost = "0.0.0.0"\nport = 1', "http://127.0.0.1:1"],
  ["an IPv6 host is bracketed", '[[servers]]\nhost = "::1"\nport = 2', "http://[::1]:2"],
  ["no host: the loopback", "[[servers]]\nport = 3", "http://127.0.0.1:3"],
  ["nothing to reach", '[cluster]\nname = "x"', undefined],
];
for (const [name, toml, url] of cases) {
  test(`cluster URL: ${name}`, () => assert.equal(clusterUrlFromToml(parseToml(toml)), url));
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
