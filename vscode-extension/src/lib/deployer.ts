/**
 * The deploy loop without VS Code: a save is sent to the admin API at once (saves of a file arriving while its
 * deploy is under way are coalesced into one more deploy), and the answer is handed to a `DeployUi` (status bar,
 * output channel, diagnostics) with where the time went. `extension.ts` gives it the real UI; tests give it a
 * recorder.
 *
 * A save may be deployed when it begins (`saving`, VS Code's will-save event, before the editor has written the
 * file: in code-server the write and the saved event took 80-400 ms more); the saved event then deploys again
 * only if the text written differs from the text sent (a formatter or another extension edited it while saving).
 */
import * as path from "node:path";
import { AdminClient, AdminError, DeployAnswer, Problem } from "./admin";
import { Coalescer } from "./coalesce";
import { DeployTiming, deploySummary, errorSummary, StatusSummary } from "./outcome";

export interface ModuleFile {
  /** Absolute path on disk. */
  file: string;
  /** The project root holding it. */
  root: string;
  /** Its path relative to the root, `/`-separated: what the cluster calls it. */
  path: string;
  source: string;
}

export interface DeployUi {
  busy(label: string): void;
  done(summary: StatusSummary): void;
  /** The problems of one file (absolute path); an empty list clears them. */
  problems(file: string, problems: Problem[]): void;
}

export type DeployResult = { ok: true; answer: DeployAnswer } | { ok: false; error: AdminError };

export interface DeployerOptions {
  /** 0 (default): a save deploys at once. Above 0: once no other save of the file arrives for that long. */
  delayMs?: number;
  /** A hint added to the message when the token is refused (401). */
  tokenHint?: () => string;
}

export class Deployer {
  private readonly coalescer: Coalescer<{ module: ModuleFile; savedAt: number; early: boolean }>;
  /** Per file, the text `saving` sent for the save under way, which its saved event need not send again. */
  private readonly sentEarly = new Map<string, string>();

  /**
   * `client(fresh)` may hand out a client kept from an earlier deploy (so a save does not read the settings, the
   * token and the cluster directory again); when that one fails with 401 or cannot reach the cluster, the deploy
   * asks once more with `fresh: true`.
   */
  constructor(
    private readonly client: (fresh: boolean) => Promise<AdminClient>,
    private readonly ui: DeployUi,
    private readonly options: DeployerOptions = {},
  ) {
    this.coalescer = new Coalescer(options.delayMs ?? 0, async (_key, { module, savedAt, early }) => {
      await this.deploy([module], savedAt, early);
    });
  }

  /**
   * The save of a file began: its text is deployed now (or after the deploy of the same file under way), and
   * the saved event that follows with the same text deploys nothing more.
   */
  saving(module: ModuleFile, at = Date.now()): void {
    this.sentEarly.set(module.file, module.source);
    this.coalescer.push(module.file, { module, savedAt: at, early: true });
  }

  /**
   * A saved file: deployed at once, or after the deploy of the same file under way (the last save wins); nothing
   * more when `saving` sent this very text as the save began.
   */
  saved(module: ModuleFile, savedAt = Date.now()): void {
    const early = this.sentEarly.get(module.file);
    this.sentEarly.delete(module.file);
    if (early === module.source) return;
    this.coalescer.push(module.file, { module, savedAt, early: false });
  }

  /**
   * Resolve the client and make one request to the cluster (`GET /splice/ping`), so the first save does not pay
   * for it: the first `fetch` of a process sets up its HTTP stack (in VS Code's extension host also its proxy
   * handling) and a connection. Never throws: a cluster not reachable yet is the save's to report.
   */
  async warm(): Promise<void> {
    try {
      const client = await this.client(false);
      const answer = await fetch(`${client.baseUrl}/splice/ping`, { signal: AbortSignal.timeout(5_000) });
      await answer.arrayBuffer();
    } catch {
      // reported by the first deploy that needs it
    }
  }

  /** Resolves once every coalesced save was deployed. */
  idle(): Promise<void> {
    return this.coalescer.idle();
  }

  dispose(): void {
    this.coalescer.dispose();
  }

  /**
   * Deploy files together (all or nothing), and report the outcome to the UI; `savedAt` (epoch ms) for timings,
   * `early` when that was the moment the save began (before the file was written).
   */
  async deploy(modules: ModuleFile[], savedAt = Date.now(), early = false): Promise<DeployResult> {
    const label = modules.length === 1 ? path.basename(modules[0].file) : `${modules.length} files`;
    const started = Date.now();
    this.ui.busy(label);
    for (let fresh = false; ; fresh = true) {
      let client: AdminClient;
      try {
        client = await this.client(fresh);
      } catch (err) {
        const error = err instanceof AdminError ? err : new AdminError(0, "not_configured", (err as Error).message);
        this.ui.done(errorSummary(label, error));
        return { ok: false, error };
      }
      try {
        const sent = Date.now();
        const answer = await client.deploy(modules.map((m) => ({ path: m.path, source: m.source })));
        const timing: DeployTiming = { savedAt, started, sent, answered: Date.now(), early };
        for (const m of modules) this.ui.problems(m.file, []);
        this.ui.done(deploySummary(label, answer, timing));
        return { ok: true, answer };
      } catch (err) {
        if (!(err instanceof AdminError)) throw err;
        if (!fresh && (err.status === 401 || err.code === "unreachable")) continue; // a kept client gone stale
        return this.failed(label, modules, err);
      }
    }
  }

  private failed(label: string, modules: ModuleFile[], err: AdminError): DeployResult {
    if (err.refused) {
      const byFile = new Map<string, Problem[]>(modules.map((m) => [m.file, []]));
      for (const problem of err.problems) {
        const file = this.fileOf(problem.path, modules);
        byFile.set(file, [...(byFile.get(file) ?? []), problem]);
      }
      for (const [file, problems] of byFile) this.ui.problems(file, problems);
    }
    const hint = err.status === 401 ? (this.options.tokenHint?.() ?? "") : "";
    this.ui.done(errorSummary(label, err, hint));
    return { ok: false, error: err };
  }

  /** The file a problem's module path names: one of those deployed, else the same path under the first root. */
  private fileOf(modulePath: string, modules: ModuleFile[]): string {
    const hit = modules.find((m) => m.path === modulePath);
    if (hit) return hit.file;
    return path.join(modules[0].root, ...modulePath.split("/"));
  }
}
