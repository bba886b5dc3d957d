/**
 * Where the cluster is: its admin URL from a cluster directory's `cluster.toml` (the `[load_balancer]`
 * if there is one, else the first `[[servers]]`) and the admin token from `DIR/admin-token`.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { parse, TomlError, type TomlTableWithoutBigInt as TomlTable } from "smol-toml";

export class ClusterDirError extends Error {}

/** Addresses that mean "every interface" when a server binds them; a client connects to the loopback. */
const WILDCARDS: Record<string, string> = { "0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1" };

export function connectHost(host: string): string {
  return WILDCARDS[host] ?? host;
}

function hostUrl(host: string, port: number): string {
  const h = connectHost(host);
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

function isTable(value: unknown): value is TomlTable {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** The URL of a `[load_balancer]` or `[[servers]]` table, when it has a port. */
function tableUrl(table: unknown): string | undefined {
  if (!isTable(table) || typeof table["port"] !== "number") return undefined;
  return hostUrl(typeof table["host"] === "string" ? table["host"] : "127.0.0.1", table["port"]);
}

/** The admin URL named by a parsed `cluster.toml`, or `undefined` when it names no server. */
export function clusterUrlFromToml(doc: TomlTable): string | undefined {
  const servers = doc["servers"];
  return tableUrl(doc["load_balancer"]) ?? (Array.isArray(servers) ? tableUrl(servers[0]) : undefined);
}

/** A parsed `cluster.toml` (any TOML: inline tables, multi-line arrays); a syntax error names its line. */
export function parseClusterToml(text: string): TomlTable {
  try {
    return parse(text, { integersAsBigInt: false }); // ports are numbers, never bigints
  } catch (err) {
    if (err instanceof TomlError) {
      const [first] = err.message.split("\n", 1); // the rest is a picture of the line
      throw new ClusterDirError(`line ${err.line}: ${first.replace(/^Invalid TOML document: /, "")}`);
    }
    throw err;
  }
}

export interface ClusterDirInfo {
  url: string;
  /** The token in `DIR/admin-token`, or `undefined` when there is no such file. */
  token: string | undefined;
}

export async function readClusterDir(dir: string): Promise<ClusterDirInfo> {
  const tomlPath = path.join(dir, "cluster.toml");
  let text: string;
  try {
    text = await readFile(tomlPath, "utf8");
  } catch (err) {
    throw new ClusterDirError(`cannot read ${tomlPath}: ${(err as Error).message}`);
  }
  let url: string | undefined;
  try {
    url = clusterUrlFromToml(parseClusterToml(text));
  } catch (err) {
    throw new ClusterDirError(`${tomlPath}: ${(err as Error).message}`);
  }
  if (!url) throw new ClusterDirError(`${tomlPath} names neither a [load_balancer] nor a [[servers]] entry with a port`);
  let token: string | undefined;
  try {
    token = (await readFile(path.join(dir, "admin-token"), "utf8")).trim() || undefined;
  } catch {
    token = undefined;
  }
  return { url, token };
}
