/**
 * The extension's settings resolved into what it talks to: the cluster's admin URL and token, the project
 * roots, the interpreter for the language server. Pure apart from reading a cluster directory.
 */
import * as os from "node:os";
import * as path from "node:path";
import { readClusterDir } from "./cluster";

/** The `splice.*` settings as VS Code gives them. */
export interface RawSettings {
  clusterUrl: string;
  clusterDir: string;
  projectRoots: string[];
  exclude: string[];
  python: string;
}

export interface Target {
  url: string;
  token: string | undefined;
  /** Where the token came from, to say so when the cluster refuses it. */
  tokenSource: "secret storage" | "admin-token file" | "none";
  /** The cluster directory, absolute, when `splice.clusterDir` is set. */
  clusterDir: string | undefined;
}

export class NotConfigured extends Error {
  constructor() {
    super("no cluster configured: set 'splice.clusterUrl' (and run 'Splice: Set Admin Token') or 'splice.clusterDir'");
  }
}

/** A setting's path made absolute: `~` is the home directory, a relative path is relative to `base`. */
export function resolvePath(value: string, base: string | undefined): string {
  let v = value.trim();
  if (v === "~" || v.startsWith("~/")) v = path.join(os.homedir(), v.slice(1));
  if (path.isAbsolute(v) || !base) return path.resolve(v);
  return path.resolve(base, v);
}

export function projectRoots(raw: Pick<RawSettings, "projectRoots">, workspaceFolders: readonly string[]): string[] {
  const configured = raw.projectRoots.map((r) => r.trim()).filter((r) => r);
  if (!configured.length) return [...workspaceFolders];
  return configured.map((r) => resolvePath(r, workspaceFolders[0]));
}

/** The URL without trailing slashes. */
export function normalizeUrl(url: string): string {
  return url.trim().replace(/\/+$/, "");
}

/**
 * The cluster to talk to: `splice.clusterUrl` wins for the URL, else the cluster directory's `cluster.toml`.
 * The token is the one in secret storage, else the cluster directory's `admin-token`.
 */
export async function resolveTarget(
  raw: Pick<RawSettings, "clusterUrl" | "clusterDir">,
  workspaceRoot: string | undefined,
  storedToken: string | undefined,
): Promise<Target> {
  const clusterDir = raw.clusterDir.trim() ? resolvePath(raw.clusterDir, workspaceRoot) : undefined;
  const dirInfo = clusterDir ? await readClusterDir(clusterDir) : undefined;
  const url = raw.clusterUrl.trim() ? normalizeUrl(raw.clusterUrl) : dirInfo?.url;
  if (!url) throw new NotConfigured();
  if (storedToken) return { url, token: storedToken, tokenSource: "secret storage", clusterDir };
  if (dirInfo?.token) return { url, token: dirInfo.token, tokenSource: "admin-token file", clusterDir };
  return { url, token: undefined, tokenSource: "none", clusterDir };
}

/**
 * Whether VS Code may edit a document while saving it, before writing it (`editor.formatOnSave`, or any
 * `editor.codeActionsOnSave` entry that runs: `true`, `"explicit"`, `"always"`; a list names kinds to run).
 */
export function savingMayEdit(formatOnSave: boolean, codeActionsOnSave: unknown): boolean {
  if (formatOnSave) return true;
  if (Array.isArray(codeActionsOnSave)) return codeActionsOnSave.length > 0;
  if (codeActionsOnSave && typeof codeActionsOnSave === "object") {
    return Object.values(codeActionsOnSave).some((v) => v === true || v === "explicit" || v === "always");
  }
  return false;
}
