import assert from "node:assert/strict";
import { test } from "node:test";
import { deployable, findProjectRoot, globToRegExp, isExcluded, modulePath } from "../src/lib/paths";

test("the deepest root holding the file", () => {
  const roots = ["/w", "/w/services", "/other"];
  assert.equal(findProjectRoot("/w/services/shop/orders.py", roots), "/w/services");
  assert.equal(findProjectRoot("/w/tools/x.py", roots), "/w");
  assert.equal(findProjectRoot("/wx/a.py", roots), undefined);
  assert.equal(findProjectRoot("/w", roots), undefined);
});

test("module paths are posix and relative", () => {
  assert.equal(modulePath("/w", "/w/shop/orders.py"), "shop/orders.py");
});

const globs: Array<[string, string, boolean]> = [
  ["**/tests/**", "tests/test_a.py", true],
  ["**/tests/**", "shop/tests/a.py", true],
  ["**/tests/**", "shop/testsx/a.py", false],
  ["test_*.py", "shop/test_orders.py", true],
  ["test_*.py", "shop/orders_test.py", false],
  ["conftest.py", "conftest.py", true],
  ["shop/*.py", "shop/orders.py", true],
  ["shop/*.py", "shop/sub/orders.py", false],
  ["shop/**/*.py", "shop/sub/deep/orders.py", true],
  ["**/{venv,.venv}/**", ".venv/lib/x.py", true],
  ["a?.py", "ab.py", true],
  ["a.py", "axpy", false],
];
for (const [glob, rel, want] of globs) {
  test(`exclude ${glob} ${want ? "matches" : "does not match"} ${rel}`, () => assert.equal(isExcluded(rel, [glob]), want));
}

test("glob special characters are literal", () => {
  assert.ok(globToRegExp("a+b(c).py").test("a+b(c).py"));
});

test("deployable: a .py file under a root, not excluded", () => {
  const roots = ["/w"];
  assert.deepEqual(deployable("/w/shop/orders.py", roots, []), { root: "/w", path: "shop/orders.py" });
  assert.equal(deployable("/w/shop/orders.txt", roots, []), undefined);
  assert.equal(deployable("/elsewhere/orders.py", roots, []), undefined);
  assert.equal(deployable("/w/tests/test_orders.py", roots, ["**/tests/**"]), undefined);
});
