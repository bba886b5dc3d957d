import assert from "node:assert/strict";
import { test } from "node:test";
import { parseToml, TomlError } from "../src/lib/toml";

test("reads what splice quickstart writes", () => {
  const doc = parseToml(`# Splice cluster configuration
[cluster]
name = "shop"
redis = ""  # the bus; empty: HTTP
sync_interval = 1.0

[pickup]
dirs = ["pickup", 'b#c']

[load_balancer]
host = "127.0.0.1"
port = 17_010

[[servers]]
name = "server1"
port = 17011

[[servers]]
name = "server2"
port = 17012
enabled = true
`);
  assert.deepEqual(doc["cluster"], { name: "shop", redis: "", sync_interval: 1 });
  assert.deepEqual(doc["pickup"], { dirs: ["pickup", "b#c"] });
  assert.deepEqual(doc["load_balancer"], { host: "127.0.0.1", port: 17010 });
  assert.deepEqual(doc["servers"], [
    { name: "server1", port: 17011 },
    { name: "server2", port: 17012, enabled: true },
  ]);
});

test("dotted tables and escapes", () => {
  const doc = parseToml('[a.b]\nx = "q\\"uote"\n');
  assert.deepEqual(doc, { a: { b: { x: 'q"uote' } } });
});

for (const bad of ["just words", 'x = "unclosed', "x = [1,\n2]"]) {
  test(`refuses ${JSON.stringify(bad)} with its line`, () => {
    assert.throws(() => parseToml(bad), TomlError);
  });
}
