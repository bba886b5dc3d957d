import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { dashboardDirFromToml, dashboardUrlFromToml, NoDashboard, resolveDashboardUrl } from "../src/lib/dashboard";

test("the dashboard directory a cluster.toml names", () => {
  assert.equal(dashboardDirFromToml({ dashboard: { dir: "dashboard" } }, "/c"), "/c/dashboard");
  assert.equal(dashboardDirFromToml({ dashboard: { dir: "/elsewhere/d" } }, "/c"), "/elsewhere/d");
  assert.equal(dashboardDirFromToml({ servers: [] }, "/c"), undefined);
  assert.equal(dashboardDirFromToml({ dashboard: { dir: " " } }, "/c"), undefined);
});

test("the URL a dashboard.toml listens on", () => {
  assert.equal(dashboardUrlFromToml({ dashboard: { host: "127.0.0.1", port: 17009 } }), "http://127.0.0.1:17009");
  assert.equal(dashboardUrlFromToml({ dashboard: { host: "0.0.0.0", port: 8080 } }), "http://127.0.0.1:8080");
  assert.equal(dashboardUrlFromToml({ dashboard: { host: "::1", port: 1 } }), "http://[::1]:1");
  assert.equal(dashboardUrlFromToml({ dashboard: {} }), "http://127.0.0.1:17009");
  assert.equal(
    dashboardUrlFromToml({ dashboard: { host: "ops.example", port: 443, tls_cert: "c.pem", tls_key: "k.pem" } }),
    "https://ops.example:443");
  assert.equal(dashboardUrlFromToml({ cluster: {} }), undefined);
});

test("resolving the dashboard's URL: the setting, a cluster directory, a dashboard directory", async (t) => {
  const ws = await mkdtemp(path.join(tmpdir(), "splice-dash-"));
  t.after(() => rm(ws, { recursive: true, force: true }));
  const cluster = path.join(ws, "cluster");
  await mkdir(path.join(cluster, "dashboard"), { recursive: true });
  await writeFile(path.join(cluster, "cluster.toml"), '[dashboard]\ndir = "dashboard"\n\n[[servers]]\nport = 17011\n');
  await writeFile(path.join(cluster, "dashboard", "dashboard.toml"), '[dashboard]\nhost = "127.0.0.1"\nport = 17009\n');

  assert.equal(await resolveDashboardUrl("http://ops:9000/", cluster), "http://ops:9000");
  assert.equal(await resolveDashboardUrl("", cluster), "http://127.0.0.1:17009");
  assert.equal(await resolveDashboardUrl("", path.join(cluster, "dashboard")), "http://127.0.0.1:17009");
  await assert.rejects(resolveDashboardUrl("", undefined), /set 'splice.dashboardUrl' or 'splice.clusterDir'/);

  const plain = path.join(ws, "plain");
  await mkdir(plain);
  await writeFile(path.join(plain, "cluster.toml"), "[[servers]]\nport = 17011\n");
  await assert.rejects(resolveDashboardUrl("", plain), (err: Error) =>
    err instanceof NoDashboard && err.message.includes(`splice create dashboard --cluster ${plain}`));
  await assert.rejects(resolveDashboardUrl("", path.join(ws, "missing")), NoDashboard);
});
