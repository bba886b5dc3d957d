import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { NotConfigured, projectRoots, resolvePath, resolveTarget, savingMayEdit } from "../src/lib/settings";

test("paths: ~, relative to the workspace, absolute", () => {
  assert.equal(resolvePath("~/c", "/w"), path.join(homedir(), "c"));
  assert.equal(resolvePath("cluster", "/w"), "/w/cluster");
  assert.equal(resolvePath("/abs/c", "/w"), "/abs/c");
});

test("project roots default to the workspace folders", () => {
  assert.deepEqual(projectRoots({ projectRoots: [] }, ["/w", "/v"]), ["/w", "/v"]);
  assert.deepEqual(projectRoots({ projectRoots: ["services", " ", "/abs"] }, ["/w"]), ["/w/services", "/abs"]);
});

test("resolving the target", async (t) => {
  const ws = await mkdtemp(path.join(tmpdir(), "splice-ws-"));
  t.after(() => rm(ws, { recursive: true, force: true }));
  await mkdir(path.join(ws, "cluster"));
  await writeFile(path.join(ws, "cluster", "cluster.toml"), "[[servers]]\nport = 17011\n");
  await writeFile(path.join(ws, "cluster", "admin-token"), "from-file\n");

  await assert.rejects(resolveTarget({ clusterUrl: "", clusterDir: "" }, ws, "x"), NotConfigured);

  assert.deepEqual(await resolveTarget({ clusterUrl: "", clusterDir: "cluster" }, ws, undefined), {
    url: "http://127.0.0.1:17011", token: "from-file", tokenSource: "admin-token file", clusterDir: path.join(ws, "cluster"),
  });
  // the stored secret wins over the file; the URL setting wins over cluster.toml
  assert.deepEqual(await resolveTarget({ clusterUrl: "http://lb:17010/", clusterDir: "cluster" }, ws, "secret"), {
    url: "http://lb:17010", token: "secret", tokenSource: "secret storage", clusterDir: path.join(ws, "cluster"),
  });
  assert.deepEqual(await resolveTarget({ clusterUrl: "http://lb:17010", clusterDir: "" }, ws, undefined), {
    url: "http://lb:17010", token: undefined, tokenSource: "none", clusterDir: undefined,
  });
});

test("saving may edit the text: format on save, or code actions on save that run", () => {
  const cases: Array<[boolean, unknown, boolean]> = [
    [false, {}, false],
    [false, undefined, false],
    [true, {}, true],
    [false, { "source.organizeImports": "explicit" }, true],
    [false, { "source.fixAll": "always" }, true],
    [false, { "source.fixAll": true }, true],
    [false, { "source.fixAll": "never", "source.organizeImports": false }, false],
    [false, ["source.organizeImports"], true],
    [false, [], false],
  ];
  for (const [formatOnSave, codeActions, expected] of cases) {
    assert.equal(savingMayEdit(formatOnSave, codeActions), expected, JSON.stringify([formatOnSave, codeActions]));
  }
});
