/**
 * Where the cluster is: its admin URL from a cluster directory's `cluster.toml` (the `[load_balancer]`
 * if there is one, else the first `[[servers]]`) and the admin token from `DIR/admin-token`.
 */
import { readFile } from "node:fs/promises";
import * as path from "node:path";
import { parseToml, TomlTable } from "./toml";

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

/** The admin URL named by a parsed `cluster.toml`, or `undefined` when it names no server. */
export function clusterUrlFromToml(doc: TomlTable): string | undefined {
  const lb = doc["load_balancer"];
  if (lb && typeof lb === "object" && !Array.isArray(lb) && typeof lb["port"] === "number") {
    return hostUrl(typeof lb["host"] === "string" ? lb["host"] : "127.0.0.1", lb["port"]);
  }
  const servers = doc["servers"];
  if (Array.isArray(servers)) {
    const first = servers[0] as TomlTable | undefined;
    if (first && typeof first === "object" && typeof first["port"] === "number") {
      return hostUrl(typeof first["host"] === "string" ? first["host"] : "127.0.0.1", first["port"]);
    }
  }
  return undefined;
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
    url = clusterUrlFromToml(parseToml(text));
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
