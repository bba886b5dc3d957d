import assert from "node:assert/strict";
import { test } from "node:test";
import { AdminError, errorFromBody, Problem } from "../src/lib/admin";
import { deploySummary, errorSummary, problemDiagnostic, problemsByPath, undeploySummary } from "../src/lib/outcome";

const deployed = {
  server: "server1",
  status: "deployed",
  sequence: 7,
  modules: [{ path: "shop/orders.py", module: "shop.orders", version: 3, unchanged: false, services: ["orders.get"] }],
  timings: { total_ms: 23.6 },
  servers: [
    { server: "server1", status: "deployed", sequence: 7 },
    { server: "server2", status: "deployed", sequence: 7, ms: 4.2 },
  ],
};

test("a deploy every server confirmed", () => {
  const s = deploySummary("orders.py", deployed);
  assert.equal(s.level, "ok");
  assert.equal(s.text, "$(check) Splice orders.py: server1 ✓ server2 ✓");
  assert.match(s.tooltip, /deployed \(24 ms\)/);
  assert.match(s.tooltip, /services: orders.get/);
  assert.deepEqual(s.lines, [
    "deployed orders.py: deployed, sequence 7 (24 ms)",
    "  shop/orders.py v3: orders.get",
    "  server1: deployed, sequence 7",
    "  server2: deployed, sequence 7, 4 ms",
  ]);
});

test("a deploy's timing line says where the time between the save and the answer went", () => {
  const savedAt = new Date(2026, 11, 3, 9, 5, 1, 7).getTime(); // local time, as the line prints it
  const s = deploySummary("orders.py", deployed, { savedAt, started: savedAt, sent: savedAt + 3, answered: savedAt + 30 });
  assert.equal(
    s.lines.at(-1),
    "  saved at 09:05:01.007, answered 30 ms later: waited 0 ms for a deploy of the file under way, 3 ms to find the cluster, " +
      "27 ms for every server to deploy (the server's own 24 ms, server2 4 ms)",
  );
  const early = deploySummary("orders.py", deployed, { savedAt, started: savedAt, sent: savedAt + 3, answered: savedAt + 30, early: true });
  assert.match(early.lines.at(-1)!, /^  save began at 09:05:01\.007, answered 30 ms later: /);
});

test("a partial deploy names the server that did not confirm", () => {
  const s = deploySummary("orders.py", {
    ...deployed,
    status: "partial",
    servers: [deployed.servers[0], { server: "server2", status: "timed_out", error: "no answer in 10 s" }],
  });
  assert.equal(s.level, "warning");
  assert.equal(s.text, "$(warning) Splice orders.py: server1 ✓ server2 ⧗");
  assert.ok(s.lines.includes("  server2: timed_out, error: no answer in 10 s"));
});

test("an undeploy", () => {
  const s = undeploySummary("orders.py", { status: "undeployed", services: ["orders.get"], servers: [{ server: "server1", status: "deployed" }] });
  assert.equal(s.level, "ok");
  assert.equal(s.text, "$(check) Splice undeployed orders.py: server1 ✓");
});

test("a refusal names the first place; the output carries the traceback", () => {
  const err = errorFromBody(422, {
    error: {
      code: "deploy_failed",
      message: "shop/bad.py:2: ModuleNotFoundError",
      problems: [{ path: "shop/bad.py", line: 2, column: null, kind: "import", message: "ModuleNotFoundError: x", traceback: "Traceback:\n  File x\nModuleNotFoundError: x\n" }],
    },
  }, "");
  assert.ok(err.refused);
  const s = errorSummary("bad.py", err);
  assert.equal(s.text, "$(error) Splice bad.py: refused, shop/bad.py:2");
  assert.deepEqual(s.lines.slice(1), ["  shop/bad.py:2: ModuleNotFoundError: x", "    Traceback:", "      File x", "    ModuleNotFoundError: x"]);
});

test("other failures: unreachable, token refused, not JSON", () => {
  assert.equal(errorSummary("a.py", new AdminError(0, "unreachable", "ECONNREFUSED")).text, "$(error) Splice a.py: cluster unreachable");
  const unauthorized = errorFromBody(401, { error: { code: "unauthorized", message: "needs a token" } }, "");
  const s = errorSummary("a.py", unauthorized, "set the token");
  assert.equal(s.text, "$(error) Splice a.py: token refused");
  assert.deepEqual(s.lines, ["a.py: needs a token (HTTP 401, unauthorized)", "  set the token"]);
  const html = errorFromBody(502, undefined, "<html>bad gateway</html>", "http://lb");
  assert.equal(html.code, "http_502");
  assert.match(html.message, /bad gateway/);
  assert.equal(html.refused, false);
});

const lines = ["import os", "def f(:", "    x = undefined_name  ", "", "last"];
const places: Array<[string, Problem, [number, number, number]]> = [
  ["a column marks the word there", { path: "a.py", line: 3, column: 9, message: "m" }, [2, 8, 22]],
  ["a column on punctuation marks one character", { path: "a.py", line: 2, column: 7, message: "m" }, [1, 6, 7]],
  ["no column: the line from its first non-blank", { path: "a.py", line: 3, column: null, message: "m" }, [2, 4, 24]],
  ["a column past the end: the last character", { path: "a.py", line: 1, column: 40, message: "m" }, [0, 8, 9]],
  ["a line past the end: the last line", { path: "a.py", line: 99, column: null, message: "m" }, [4, 0, 4]],
  ["no line: the first", { path: "a.py", line: null, column: null, message: "m" }, [0, 0, 9]],
  ["an empty line", { path: "a.py", line: 4, column: 1, message: "m" }, [3, 0, 0]],
];
for (const [name, problem, [line, start, end]] of places) {
  test(`diagnostic range: ${name}`, () => {
    const d = problemDiagnostic(problem, lines);
    assert.deepEqual([d.startLine, d.startCharacter, d.endLine, d.endCharacter], [line, start, line, end]);
  });
}

test("a diagnostic's message carries the end of the traceback; its code is the kind", () => {
  const tb = ["Traceback (most recent call last):", ...Array.from({ length: 10 }, (_, i) => `  frame ${i}`), "ValueError: no"].join("\n");
  const d = problemDiagnostic({ path: "a.py", line: 1, column: null, message: "ValueError: no", kind: "import", traceback: tb }, lines);
  assert.equal(d.code, "import");
  assert.ok(d.message.startsWith("ValueError: no\n\nTraceback (most recent call last):\n  ...\n"));
  assert.ok(d.message.endsWith("  frame 9\nValueError: no"));
  assert.ok(!d.message.includes("frame 4"));
});

test("problems grouped by path", () => {
  const p = (path: string, line: number): Problem => ({ path, line, column: null, message: "m" });
  assert.deepEqual([...problemsByPath([p("a.py", 1), p("b.py", 2), p("a.py", 3)]).entries()].map(([k, v]) => [k, v.length]), [["a.py", 2], ["b.py", 1]]);
});
