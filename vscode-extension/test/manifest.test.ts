import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { test } from "node:test";

const root = path.resolve(__dirname, "../..");
const manifest = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8"));
const source = readFileSync(path.join(root, "src/extension.ts"), "utf8");

test("the extension's identity", () => {
  assert.equal(`${manifest.publisher}.${manifest.name}`, "splice.splice-vscode");
  assert.equal(manifest.displayName, "Splice");
  assert.equal(manifest.engines.vscode, "^1.91.0");
  assert.deepEqual(manifest.extensionDependencies, ["ms-python.debugpy"]);
  assert.equal(manifest.main, "./dist/extension.js");
});

test("every contributed command is registered, and every registered one contributed", () => {
  const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
  const registered = [...source.matchAll(/command\("(splice\.[A-Za-z]+)"/g)].map((m) => m[1]).sort();
  assert.deepEqual(registered, contributed);
  for (const id of ["splice.toggleDeployOnSave", "splice.setToken", "splice.deployFile", "splice.deployFolder",
    "splice.undeployFile", "splice.invokeService", "splice.showCluster", "splice.attachCluster"]) {
    assert.ok(contributed.includes(id), id);
  }
});

test("every setting the code reads is contributed", () => {
  const properties = Object.keys(manifest.contributes.configuration.properties).sort();
  const read = [...source.matchAll(/c\.get<[^>]+>\("([^"]+)"/g)].map((m) => `splice.${m[1]}`).sort();
  assert.deepEqual(read, properties);
});

test("the token is never a setting", () => {
  assert.ok(!Object.keys(manifest.contributes.configuration.properties).some((k) => /token/i.test(k)));
});
