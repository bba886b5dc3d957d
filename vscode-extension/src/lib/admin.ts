/**
 * The admin API client (`/splice/admin/...`) on Node's own `fetch`. Every failure is an `AdminError`:
 * the HTTP status (0 when the cluster did not answer), the error code and message from the JSON body, and,
 * for a refused deploy, the problems with their places.
 */

export interface Problem {
  path: string;
  line: number | null;
  column: number | null;
  message: string;
  kind?: string;
  traceback?: string;
}

export interface ServerOutcome {
  server: string;
  status: string;
  sequence?: number;
  ms?: number;
  error?: string | null;
}

export interface DeployedModule {
  path: string;
  module?: string;
  version?: number;
  unchanged?: boolean;
  services?: string[];
}

export interface DeployAnswer {
  server?: string;
  status: string;
  sequence?: number;
  servers: ServerOutcome[];
  modules?: DeployedModule[];
  services?: unknown;
  reloaded?: unknown[];
  timings?: { total_ms?: number; [k: string]: number | undefined };
  [k: string]: unknown;
}

export interface UndeployAnswer {
  status: string;
  sequence?: number;
  paths?: string[];
  services?: string[];
  servers: ServerOutcome[];
  total_ms?: number;
}

export interface ServiceInfo {
  name: string;
  path?: string;
  module?: string;
  version?: number;
  doc?: string;
  input?: unknown[];
  [k: string]: unknown;
}

export interface ClusterServer {
  name: string;
  url: string;
  pid?: number;
  live?: boolean;
  last_sequence?: number;
  last_seen?: string | null;
}

export interface ClusterInfo {
  cluster: string;
  sequence?: number;
  bus?: { kind: string; connected: boolean };
  servers: ClusterServer[];
}

export interface AttachPoint {
  server: string;
  pid?: number;
  host: string;
  port: number;
  remote_root: string;
  process?: string;
  /** Which worker process of a server of several (`[[servers]] workers`) this is: 1 to N; absent with one. */
  worker?: number;
  /** That worker's cluster name (`server1.w2`). */
  member?: string;
  /** That worker's private URL (a server's port is shared by its workers). */
  url?: string;
}

export interface DebugInfo {
  server: string;
  enabled: boolean;
  attach_points: AttachPoint[];
  configured?: AttachPoint;
  restarting?: boolean;
}

export interface InvokeAnswer {
  cid?: string;
  service: string;
  status?: number;
  payload?: unknown;
  payload_encoding?: string;
}

export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly problems: Problem[] = [],
    readonly url = "",
  ) {
    super(message);
    this.name = "AdminError";
  }

  /** A deploy refused by validation (HTTP 422 `deploy_failed`): the file has problems at known places. */
  get refused(): boolean {
    return this.status === 422 && this.problems.length > 0;
  }
}

export interface AdminClientOptions {
  /** Per request, in milliseconds (a deploy waits for every server: keep it above `[deploy] cluster_timeout`). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class AdminClient {
  readonly baseUrl: string;

  constructor(
    baseUrl: string,
    readonly token: string | undefined,
    private readonly options: AdminClientOptions = {},
  ) {
    this.baseUrl = baseUrl.replace(/\/+$/, "");
  }

  /** The same client aimed at another server of the cluster. */
  forServer(url: string): AdminClient {
    return new AdminClient(url, this.token, this.options);
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}/splice/admin/${path.replace(/^\/+/, "")}`;
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers["Authorization"] = `Bearer ${this.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const doFetch = this.options.fetch ?? fetch;
    let response: Response;
    try {
      response = await doFetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (err as Error).message;
      const timedOut = (err as Error).name === "TimeoutError";
      throw new AdminError(0, timedOut ? "timeout" : "unreachable", `${method} ${url}: ${timedOut ? "no answer in time" : why}`, [], url);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) throw errorFromBody(response.status, parsed, text, url);
    if (parsed === undefined) throw new AdminError(response.status, "bad_answer", `${method} ${url}: the answer is not JSON`, [], url);
    return parsed as T;
  }

  deploy(modules: Array<{ path: string; source: string }>): Promise<DeployAnswer> {
    return this.request("POST", "deploy", { modules });
  }

  undeploy(paths: string[]): Promise<UndeployAnswer> {
    return this.request("POST", "undeploy", { paths });
  }

  async services(): Promise<ServiceInfo[]> {
    return (await this.request<{ services: ServiceInfo[] }>("GET", "services")).services;
  }

  invoke(service: string, payload: unknown): Promise<InvokeAnswer> {
    return this.request("POST", "invoke", { service, payload });
  }

  cluster(): Promise<ClusterInfo> {
    return this.request("GET", "cluster");
  }

  debug(): Promise<DebugInfo> {
    return this.request("GET", "debug");
  }

  setDebug(enabled: boolean): Promise<DebugInfo> {
    return this.request("POST", "debug", { enabled });
  }
}

export function errorFromBody(status: number, body: unknown, text: string, url = ""): AdminError {
  const error = (body as { error?: { code?: unknown; message?: unknown; problems?: unknown } } | undefined)?.error;
  if (error && typeof error === "object") {
    const problems = Array.isArray(error.problems) ? (error.problems as Problem[]) : [];
    const code = typeof error.code === "string" ? error.code : `http_${status}`;
    const message = typeof error.message === "string" ? error.message : `HTTP ${status}`;
    return new AdminError(status, code, message, problems, url);
  }
  const snippet = text.trim().slice(0, 200);
  return new AdminError(status, `http_${status}`, `HTTP ${status} from ${url}${snippet ? `: ${snippet}` : ""}`, [], url);
}
