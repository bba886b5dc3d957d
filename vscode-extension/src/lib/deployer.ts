/**
 * The deploy loop without VS Code: saves are coalesced per file, sent to the admin API, and the answer is
 * handed to a `DeployUi` (status bar, output channel, diagnostics). `extension.ts` gives it the real UI;
 * tests give it a recorder.
 */
import * as path from "node:path";
import { AdminClient, AdminError, DeployAnswer, Problem } from "./admin";
import { Coalescer } from "./coalesce";
import { deploySummary, errorSummary, StatusSummary } from "./outcome";

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
  delayMs?: number;
  /** A hint added to the message when the token is refused (401). */
  tokenHint?: () => string;
}

export class Deployer {
  private readonly coalescer: Coalescer<ModuleFile>;

  constructor(
    private readonly client: () => Promise<AdminClient>,
    private readonly ui: DeployUi,
    private readonly options: DeployerOptions = {},
  ) {
    this.coalescer = new Coalescer(options.delayMs ?? 150, async (_key, module) => {
      await this.deploy([module]);
    });
  }

  /** A saved file: deployed once no other save of it arrives for `delayMs`. */
  saved(module: ModuleFile): void {
    this.coalescer.push(module.file, module);
  }

  /** Resolves once every coalesced save was deployed. */
  idle(): Promise<void> {
    return this.coalescer.idle();
  }

  dispose(): void {
    this.coalescer.dispose();
  }

  /** Deploy files together (all or nothing), and report the outcome to the UI. */
  async deploy(modules: ModuleFile[]): Promise<DeployResult> {
    const label = modules.length === 1 ? path.basename(modules[0].file) : `${modules.length} files`;
    this.ui.busy(label);
    let client: AdminClient;
    try {
      client = await this.client();
    } catch (err) {
      const error = err instanceof AdminError ? err : new AdminError(0, "not_configured", (err as Error).message);
      this.ui.done(errorSummary(label, error));
      return { ok: false, error };
    }
    try {
      const answer = await client.deploy(modules.map((m) => ({ path: m.path, source: m.source })));
      for (const m of modules) this.ui.problems(m.file, []);
      this.ui.done(deploySummary(label, answer));
      return { ok: true, answer };
    } catch (err) {
      if (!(err instanceof AdminError)) throw err;
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
  }

  /** The file a problem's module path names: one of those deployed, else the same path under the first root. */
  private fileOf(modulePath: string, modules: ModuleFile[]): string {
    const hit = modules.find((m) => m.path === modulePath);
    if (hit) return hit.file;
    return path.join(modules[0].root, ...modulePath.split("/"));
  }
}
