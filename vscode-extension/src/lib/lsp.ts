/**
 * How the language server is started: which interpreter runs `-m splice.lsp`, and the settings it gets
 * as `initializationOptions` (see README "Language server").
 */
import { RawSettings, Target } from "./settings";

export interface LspSplice {
  clusterUrl?: string;
  token?: string;
  clusterDir?: string;
}

/**
 * `{"splice": {"clusterUrl", "token"}}` when a URL is configured, else `{"splice": {"clusterDir"}}`
 * (the server reads `cluster.toml` and `admin-token` itself), else `{"splice": {}}`.
 */
export function initializationOptions(
  raw: Pick<RawSettings, "clusterUrl">,
  target: Target | undefined,
): { splice: LspSplice } {
  if (target && (raw.clusterUrl.trim() || !target.clusterDir)) {
    return { splice: target.token ? { clusterUrl: target.url, token: target.token } : { clusterUrl: target.url } };
  }
  if (target?.clusterDir) return { splice: { clusterDir: target.clusterDir } };
  return { splice: {} };
}

/** The interpreter: the Python extension's, else `splice.python`, else `python3`. */
export function chooseInterpreter(fromPythonExtension: string | undefined, setting: string): string {
  return fromPythonExtension?.trim() || setting.trim() || "python3";
}
