/**
 * Where the cluster's dashboard is: the `splice.dashboardUrl` setting, else the cluster directory's
 * `cluster.toml` (`[dashboard] dir = "dashboard"`) and that directory's `dashboard.toml` (`host`, `port`, and
 * https when it has `tls_cert` and `tls_key`). Reading the files is what `splice status` does too, without
 * needing the `splice` command on the editor's PATH.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { type TomlTableWithoutBigInt as TomlTable } from "smol-toml";
import { ClusterDirError, connectHost, parseClusterToml } from "./cluster";
import { normalizeUrl } from "./settings";

export class NoDashboard extends Error {}

function table(doc: TomlTable, key: string): TomlTable | undefined {
  const value = doc[key];
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date)
    ? (value as TomlTable) : undefined;
}

/** The dashboard directory a parsed `cluster.toml` names (absolute), or `undefined` when it has none. */
export function dashboardDirFromToml(doc: TomlTable, clusterDir: string): string | undefined {
  const dir = table(doc, "dashboard")?.["dir"];
  return typeof dir === "string" && dir.trim() ? path.resolve(clusterDir, dir) : undefined;
}

/** The URL a parsed `dashboard.toml` listens on (a wildcard address is reached on the loopback). */
export function dashboardUrlFromToml(doc: TomlTable): string | undefined {
  const dashboard = table(doc, "dashboard");
  if (!dashboard) return undefined;
  const port = dashboard["port"] ?? 17009;
  if (typeof port !== "number") return undefined;
  const host = connectHost(typeof dashboard["host"] === "string" ? dashboard["host"] : "127.0.0.1");
  const tls = typeof dashboard["tls_cert"] === "string" && typeof dashboard["tls_key"] === "string";
  return `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

async function readToml(file: string): Promise<TomlTable> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new NoDashboard(`cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseClusterToml(text);
  } catch (err) {
    throw new ClusterDirError(`${file}: ${(err as Error).message}`);
  }
}

/**
 * The dashboard's URL: `setting` when set, else from `clusterDir` (a cluster directory with a dashboard, or a
 * dashboard directory itself). Throws `NoDashboard` saying what to set or run when there is none.
 */
export async function resolveDashboardUrl(setting: string, clusterDir: string | undefined): Promise<string> {
  if (setting.trim()) return normalizeUrl(setting);
  if (!clusterDir) {
    throw new NoDashboard("no dashboard configured: set 'splice.dashboardUrl' or 'splice.clusterDir'");
  }
  let dashboardDir = clusterDir;
  const ownFile = path.join(clusterDir, "dashboard.toml");
  const own = await readFile(ownFile, "utf8").then(() => true, () => false);
  if (!own) {
    dashboardDir = dashboardDirFromToml(await readToml(path.join(clusterDir, "cluster.toml")), clusterDir) ?? "";
    if (!dashboardDir) {
      throw new NoDashboard(
        `the cluster in ${clusterDir} has no dashboard: run 'splice create dashboard --cluster ${clusterDir}', or set 'splice.dashboardUrl'`);
    }
  }
  const file = path.join(dashboardDir, "dashboard.toml");
  const url = dashboardUrlFromToml(await readToml(file));
  if (!url) throw new NoDashboard(`${file} has no [dashboard] table with a port`);
  return url;
}
