/**
 * The VS Code side: wires settings, secret storage, the status bar, diagnostics and the output channel to
 * the pure modules in `lib/` (which know nothing of VS Code), and registers the commands, the save
 * handler, the debug configuration provider and the language client.
 */
import * as fs from "node:fs/promises";
import * as path from "node:path";
import * as vscode from "vscode";
import { LanguageClient, LanguageClientOptions, ServerOptions, TransportKind } from "vscode-languageclient/node";
import { AdminClient, AdminError, Problem } from "./lib/admin";
import { resolveDashboardUrl } from "./lib/dashboard";
import { attachConfigurations, clusterDebugStates } from "./lib/debugConfigs";
import { Deployer, ModuleFile } from "./lib/deployer";
import { chooseInterpreter, initializationOptions } from "./lib/lsp";
import { errorSummary, problemDiagnostic, StatusSummary, undeploySummary } from "./lib/outcome";
import { deployable, isExcluded, modulePath, findProjectRoot } from "./lib/paths";
import { projectRoots, RawSettings, resolvePath, resolveTarget, savingMayEdit, Target } from "./lib/settings";

const TOKEN_KEY = "splice.adminToken";
const DEPLOY_ON_SAVE_KEY = "splice.deployOnSave";

let state: Splice | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  state = new Splice(context);
  await state.start();
}

export async function deactivate(): Promise<void> {
  await state?.stop();
  state = undefined;
}

function readSettings(): RawSettings & { deployOnSave: boolean; lspEnabled: boolean; dashboardUrl: string } {
  const c = vscode.workspace.getConfiguration("splice");
  return {
    clusterUrl: c.get<string>("clusterUrl", ""),
    clusterDir: c.get<string>("clusterDir", ""),
    projectRoots: c.get<string[]>("projectRoots", []),
    exclude: c.get<string[]>("exclude", []),
    python: c.get<string>("python", ""),
    deployOnSave: c.get<boolean>("deployOnSave", true),
    lspEnabled: c.get<boolean>("languageServer.enabled", true),
    dashboardUrl: c.get<string>("dashboardUrl", ""),
  };
}

function workspaceFolders(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
}

class Splice {
  private readonly output = vscode.window.createOutputChannel("Splice", { log: true });
  private readonly status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  private readonly diagnostics = vscode.languages.createDiagnosticCollection("splice");
  private readonly deployer: Deployer;
  private client: LanguageClient | undefined;

  constructor(private readonly context: vscode.ExtensionContext) {
    this.deployer = new Deployer((fresh) => this.deployClient(fresh), {
      busy: (label) => this.setStatus(`$(sync~spin) Splice ${label}`, "Deploying…", undefined),
      done: (summary) => this.report(summary),
      problems: (file, problems) => void this.setProblems(file, problems),
    }, {
      tokenHint: () => "the cluster refused the token: run 'Splice: Set Admin Token' (or 'Clear Stored Admin Token' to use the cluster directory's admin-token)",
    });
  }

  async start(): Promise<void> {
    const c = this.context;
    this.status.command = "splice.toggleDeployOnSave";
    this.idleStatus();
    this.status.show();
    c.subscriptions.push(this.output, this.status, this.diagnostics, { dispose: () => this.deployer.dispose() });
    const command = (id: string, run: (...args: any[]) => unknown) =>
      c.subscriptions.push(vscode.commands.registerCommand(id, async (...args: any[]) => {
        try {
          await run(...args);
        } catch (err) {
          this.fail(id, err);
        }
      }));
    command("splice.toggleDeployOnSave", () => this.toggleDeployOnSave());
    command("splice.setToken", () => this.setToken());
    command("splice.clearToken", () => this.clearToken());
    command("splice.deployFile", (uri?: vscode.Uri) => this.deployFile(uri));
    command("splice.deployFolder", (uri?: vscode.Uri) => this.deployFolder(uri));
    command("splice.undeployFile", (uri?: vscode.Uri) => this.undeployFile(uri));
    command("splice.invokeService", () => this.invokeService());
    command("splice.showCluster", () => this.showCluster());
    command("splice.attachCluster", () => this.attachCluster());
    command("splice.restartLanguageServer", () => this.restartLanguageServer());
    command("splice.openDashboard", () => this.openDashboard());
    c.subscriptions.push(
      vscode.workspace.onWillSaveTextDocument((e) => this.onWillSave(e.document)),
      vscode.workspace.onDidSaveTextDocument((doc) => this.onSave(doc)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration("splice")) {
          this.deployClientKept = undefined;
          this.idleStatus();
          if (e.affectsConfiguration("splice.clusterUrl") || e.affectsConfiguration("splice.clusterDir") ||
              e.affectsConfiguration("splice.python") || e.affectsConfiguration("splice.languageServer")) {
            void this.restartLanguageServer();
          }
        }
      }),
      vscode.debug.registerDebugConfigurationProvider("debugpy", {
        provideDebugConfigurations: (folder) => this.debugConfigurations(folder),
      }, vscode.DebugConfigurationProviderTriggerKind.Dynamic),
    );
    // The first save should not wait for the secret storage and the cluster directory either.
    if (this.deployOnSave()) void this.deployer.warm();
    void this.startLanguageServer();
  }

  async stop(): Promise<void> {
    await this.stopLanguageServer();
  }

  // status bar and output

  private deployOnSave(): boolean {
    return this.context.workspaceState.get<boolean>(DEPLOY_ON_SAVE_KEY) ?? readSettings().deployOnSave;
  }

  private idleStatus(): void {
    const on = this.deployOnSave();
    this.setStatus(on ? "$(cloud-upload) Splice" : "$(circle-slash) Splice",
      on ? "Splice: deploy on save is on (click to turn it off)" : "Splice: deploy on save is off (click to turn it on)", undefined);
  }

  private setStatus(text: string, tooltip: string, background: vscode.ThemeColor | undefined): void {
    this.status.text = text;
    // The tooltip's text, and a link to the dashboard (the only command its markdown may run).
    const markdown = new vscode.MarkdownString(undefined, true);
    markdown.appendText(tooltip);
    markdown.appendMarkdown("\n\n[$(link-external) Open Dashboard](command:splice.openDashboard)");
    markdown.isTrusted = { enabledCommands: ["splice.openDashboard"] };
    this.status.tooltip = markdown;
    this.status.backgroundColor = background;
  }

  private report(summary: StatusSummary): void {
    const background = summary.level === "error" ? new vscode.ThemeColor("statusBarItem.errorBackground")
      : summary.level === "warning" ? new vscode.ThemeColor("statusBarItem.warningBackground") : undefined;
    this.setStatus(summary.text, `${summary.tooltip}\n\nClick to toggle deploy on save.`, background);
    this.log(...summary.lines);
  }

  private log(...lines: string[]): void {
    for (const line of lines) this.output.info(line);
  }

  private fail(what: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.log(`${what}: ${message}`);
    void vscode.window.showErrorMessage(`Splice: ${message}`, "Show Output").then((pick) => {
      if (pick) this.output.show(true);
    });
  }

  private async setProblems(file: string, problems: Problem[]): Promise<void> {
    const uri = vscode.Uri.file(file);
    if (!problems.length) {
      this.diagnostics.delete(uri);
      return;
    }
    const open = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === uri.fsPath);
    let text = open?.getText();
    if (text === undefined) text = await fs.readFile(file, "utf8").catch(() => "");
    const lines = text.split(/\r?\n/);
    this.diagnostics.set(uri, problems.map((p) => {
      const d = problemDiagnostic(p, lines);
      const diagnostic = new vscode.Diagnostic(
        new vscode.Range(d.startLine, d.startCharacter, d.endLine, d.endCharacter), d.message, vscode.DiagnosticSeverity.Error);
      diagnostic.source = "splice deploy";
      diagnostic.code = d.code;
      return diagnostic;
    }));
  }

  // the cluster

  private async target(): Promise<Target> {
    const token = await this.context.secrets.get(TOKEN_KEY);
    return resolveTarget(readSettings(), workspaceFolders()[0], token || undefined);
  }

  private async adminClient(): Promise<AdminClient> {
    const target = await this.target();
    return new AdminClient(target.url, target.token);
  }

  /**
   * The deploy-on-save client, kept between saves: resolving the target reads the secret storage (a round trip
   * through the workbench, 30-200 ms in code-server) and the cluster directory. Dropped when the settings or the
   * token change; `fresh` (after a 401 or an unreachable cluster) resolves it again.
   */
  private deployClientKept: Promise<AdminClient> | undefined;

  private deployClient(fresh: boolean): Promise<AdminClient> {
    if (fresh || !this.deployClientKept) {
      const client = this.adminClient();
      this.deployClientKept = client;
      client.catch(() => {
        if (this.deployClientKept === client) this.deployClientKept = undefined;
      });
    }
    return this.deployClientKept;
  }

  private roots(): string[] {
    return projectRoots(readSettings(), workspaceFolders());
  }

  private moduleOf(doc: vscode.TextDocument): ModuleFile | undefined {
    if (doc.uri.scheme !== "file") return undefined;
    const settings = readSettings();
    const hit = deployable(doc.uri.fsPath, this.roots(), settings.exclude);
    return hit && { file: doc.uri.fsPath, root: hit.root, path: hit.path, source: doc.getText() };
  }

  // deploy

  /**
   * A save begins: its text is deployed now, while the editor writes the file, unless a formatter or code
   * actions on save are configured for it (they would edit the text first: the saved event deploys that).
   */
  private onWillSave(doc: vscode.TextDocument): void {
    const at = Date.now();
    if (!this.deploysOnSave(doc)) return;
    const editor = vscode.workspace.getConfiguration("editor", doc);
    if (savingMayEdit(editor.get<boolean>("formatOnSave", false), editor.get<unknown>("codeActionsOnSave", {}))) return;
    const module = this.moduleOf(doc);
    if (module) this.deployer.saving(module, at);
  }

  /** A save ended: deployed, unless the same text was deployed as it began. */
  private onSave(doc: vscode.TextDocument): void {
    const savedAt = Date.now();
    if (!this.deploysOnSave(doc)) return;
    const module = this.moduleOf(doc);
    if (module) this.deployer.saved(module, savedAt);
  }

  private deploysOnSave(doc: vscode.TextDocument): boolean {
    return (doc.languageId === "python" || doc.fileName.endsWith(".py")) && this.deployOnSave();
  }

  private async toggleDeployOnSave(): Promise<void> {
    const on = !this.deployOnSave();
    await this.context.workspaceState.update(DEPLOY_ON_SAVE_KEY, on);
    this.idleStatus();
    void vscode.window.setStatusBarMessage(`Splice: deploy on save ${on ? "on" : "off"}`, 3000);
  }

  private async documentFor(uri: vscode.Uri | undefined): Promise<vscode.TextDocument> {
    if (uri instanceof vscode.Uri) return vscode.workspace.openTextDocument(uri);
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) throw new Error("no file is open");
    return doc;
  }

  private async deployFile(uri?: vscode.Uri): Promise<void> {
    const doc = await this.documentFor(uri);
    const root = findProjectRoot(doc.uri.fsPath, this.roots());
    if (!root || !doc.fileName.endsWith(".py")) throw new Error(`${doc.fileName} is not a .py file under a project root (splice.projectRoots)`);
    const result = await this.deployer.deploy([{ file: doc.uri.fsPath, root, path: modulePath(root, doc.uri.fsPath), source: doc.getText() }]);
    if (!result.ok) this.output.show(true);
  }

  private async deployFolder(uri?: vscode.Uri): Promise<void> {
    let folder = uri instanceof vscode.Uri ? uri : undefined;
    if (!folder) {
      const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, openLabel: "Deploy" });
      folder = picked?.[0];
    }
    if (!folder) return;
    const exclude = readSettings().exclude;
    const roots = this.roots();
    const root = findProjectRoot(path.join(folder.fsPath, "x.py"), roots);
    if (!root) throw new Error(`${folder.fsPath} is not under a project root (splice.projectRoots)`);
    const uris = await vscode.workspace.findFiles(new vscode.RelativePattern(folder, "**/*.py"));
    const modules: ModuleFile[] = [];
    for (const u of uris.sort((a, b) => a.fsPath.localeCompare(b.fsPath))) {
      const rel = modulePath(root, u.fsPath);
      if (isExcluded(rel, exclude)) continue;
      const open = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === u.fsPath);
      modules.push({ file: u.fsPath, root, path: rel, source: open?.getText() ?? (await fs.readFile(u.fsPath, "utf8")) });
    }
    if (!modules.length) throw new Error(`no .py files to deploy in ${folder.fsPath}`);
    const result = await this.deployer.deploy(modules);
    if (!result.ok) this.output.show(true);
  }

  private async undeployFile(uri?: vscode.Uri): Promise<void> {
    const doc = await this.documentFor(uri);
    const root = findProjectRoot(doc.uri.fsPath, this.roots());
    if (!root) throw new Error(`${doc.fileName} is not under a project root (splice.projectRoots)`);
    const rel = modulePath(root, doc.uri.fsPath);
    const ok = await vscode.window.showWarningMessage(`Undeploy ${rel} from every server of the cluster?`, { modal: true }, "Undeploy");
    if (ok !== "Undeploy") return;
    const client = await this.adminClient();
    try {
      this.report(undeploySummary(path.basename(rel), await client.undeploy([rel])));
    } catch (err) {
      if (err instanceof AdminError) this.report(errorSummary(path.basename(rel), err));
      throw err;
    }
  }

  private async invokeService(): Promise<void> {
    const client = await this.adminClient();
    const services = await client.services();
    if (!services.length) throw new Error("the cluster runs no services yet");
    const pick = await vscode.window.showQuickPick(services.map((s) => ({
      label: s.name,
      description: [s.path, s.version !== undefined ? `v${s.version}` : ""].filter((x) => x).join(" "),
      detail: s.doc || undefined,
    })), { placeHolder: "Service to invoke", matchOnDescription: true });
    if (!pick) return;
    const key = `splice.lastPayload.${pick.label}`;
    const text = await vscode.window.showInputBox({
      prompt: `Payload for ${pick.label} (JSON; empty for none)`,
      value: this.context.workspaceState.get<string>(key, "{}"),
      validateInput: (v) => {
        if (!v.trim()) return undefined;
        try {
          JSON.parse(v);
          return undefined;
        } catch (err) {
          return `not JSON: ${(err as Error).message}`;
        }
      },
    });
    if (text === undefined) return;
    await this.context.workspaceState.update(key, text);
    const answer = await client.invoke(pick.label, text.trim() ? JSON.parse(text) : null);
    this.log(`invoked ${pick.label}: status ${answer.status ?? 200}, cid ${answer.cid ?? "?"}`);
    const content = answer.payload_encoding ? JSON.stringify(answer, null, 2) : JSON.stringify(answer.payload ?? null, null, 2);
    const doc = await vscode.workspace.openTextDocument({ language: "json", content });
    await vscode.window.showTextDocument(doc, { preview: true, viewColumn: vscode.ViewColumn.Beside });
  }

  private async showCluster(): Promise<void> {
    const client = await this.adminClient();
    const info = await client.cluster();
    this.log(`cluster ${info.cluster} at ${client.baseUrl}: sequence ${info.sequence ?? "?"}, bus ${info.bus?.kind ?? "?"}${info.bus?.connected ? " (connected)" : ""}`,
      ...info.servers.map((s) => `  ${s.name} ${s.url}: ${s.live ? "alive" : "not alive"}, applied ${s.last_sequence ?? "?"}, pid ${s.pid ?? "?"}`));
    const doc = await vscode.workspace.openTextDocument({ language: "json", content: JSON.stringify(info, null, 2) });
    await vscode.window.showTextDocument(doc, { preview: true });
  }

  private async openDashboard(): Promise<void> {
    const settings = readSettings();
    const clusterDir = settings.clusterDir.trim() ? resolvePath(settings.clusterDir, workspaceFolders()[0]) : undefined;
    const url = await resolveDashboardUrl(settings.dashboardUrl, clusterDir);
    this.log(`dashboard: ${url}`);
    if (!(await vscode.env.openExternal(vscode.Uri.parse(url)))) {
      void vscode.window.showInformationMessage(`Splice: the dashboard is at ${url}`);
    }
  }

  // debugging

  private localRoot(folder?: vscode.WorkspaceFolder): string {
    const roots = this.roots();
    const active = vscode.window.activeTextEditor?.document.uri;
    const fromActive = active?.scheme === "file" ? findProjectRoot(active.fsPath, roots) : undefined;
    const inFolder = folder ? roots.find((r) => findProjectRoot(path.join(r, "x"), [folder.uri.fsPath])) : undefined;
    const root = fromActive ?? inFolder ?? roots[0];
    if (!root) throw new Error("no project root: open a folder or set splice.projectRoots");
    return root;
  }

  private async debugConfigurations(folder: vscode.WorkspaceFolder | undefined): Promise<vscode.DebugConfiguration[]> {
    try {
      const { configurations, notes } = attachConfigurations(await clusterDebugStates(await this.adminClient()), this.localRoot(folder));
      if (notes.length) this.log("debug configurations:", ...notes.map((n) => `  ${n}`));
      return configurations;
    } catch (err) {
      this.log(`debug configurations: ${(err as Error).message}`);
      return [];
    }
  }

  private async attachCluster(): Promise<void> {
    const client = await this.adminClient();
    let states = await clusterDebugStates(client);
    const off = states.filter((s) => !s.error && !s.info?.enabled);
    if (off.length) {
      const names = off.map((s) => s.server).join(", ");
      const pick = await vscode.window.showWarningMessage(
        `Debugging is off on ${names}. Turn it on (anyone who can connect to the attach point can run code in the server)?`,
        { modal: true }, "Enable Debugging");
      if (pick === "Enable Debugging") {
        await Promise.all(off.map((s) => client.forServer(s.url).setDebug(true)));
        states = await clusterDebugStates(client);
      }
    }
    const { configurations, notes } = attachConfigurations(states, this.localRoot());
    if (notes.length) this.log("attach to cluster:", ...notes.map((n) => `  ${n}`));
    if (!configurations.length) throw new Error(`no server listens for a debugger${notes.length ? `: ${notes.join("; ")}` : ""}`);
    const folder = vscode.workspace.workspaceFolders?.[0];
    for (const configuration of configurations) {
      const started = await vscode.debug.startDebugging(folder, configuration);
      this.log(`${configuration.name}: ${started ? "attached" : "could not start"} (${configuration.connect.host}:${configuration.connect.port})`);
    }
  }

  // secrets

  private async setToken(): Promise<void> {
    const token = await vscode.window.showInputBox({ prompt: "The cluster's admin token (DIR/admin-token)", password: true, ignoreFocusOut: true });
    if (token === undefined) return;
    if (token.trim()) await this.context.secrets.store(TOKEN_KEY, token.trim());
    else await this.context.secrets.delete(TOKEN_KEY);
    this.deployClientKept = undefined;
    void vscode.window.showInformationMessage(token.trim() ? "Splice: admin token stored" : "Splice: admin token cleared");
    void this.restartLanguageServer();
  }

  private async clearToken(): Promise<void> {
    await this.context.secrets.delete(TOKEN_KEY);
    this.deployClientKept = undefined;
    void vscode.window.showInformationMessage("Splice: stored admin token cleared");
    void this.restartLanguageServer();
  }

  // language server

  private async interpreter(): Promise<string> {
    let fromPython: string | undefined;
    try {
      const ext = vscode.extensions.getExtension<any>("ms-python.python");
      if (ext) {
        const api = ext.isActive ? ext.exports : await ext.activate();
        const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
        const active = api?.environments?.getActiveEnvironmentPath?.(folder);
        const env = active ? await api.environments.resolveEnvironment(active) : undefined;
        fromPython = env?.executable?.uri?.fsPath ?? active?.path;
      }
    } catch (err) {
      this.log(`the Python extension named no interpreter: ${(err as Error).message}`);
    }
    return chooseInterpreter(fromPython, readSettings().python);
  }

  private async startLanguageServer(): Promise<void> {
    const settings = readSettings();
    if (!settings.lspEnabled) return;
    let target: Target | undefined;
    try {
      target = await this.target();
    } catch (err) {
      this.log(`language server: without a cluster (${(err as Error).message})`);
    }
    const python = await this.interpreter();
    const serverOptions: ServerOptions = { command: python, args: ["-m", "splice.lsp"], transport: TransportKind.stdio };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file", language: "python" }],
      initializationOptions: initializationOptions(settings, target),
      outputChannel: this.output,
    };
    this.client = new LanguageClient("splice", "Splice Language Server", serverOptions, clientOptions);
    try {
      await this.client.start();
      this.log(`language server started: ${python} -m splice.lsp`);
    } catch (err) {
      this.log(`language server did not start (${python} -m splice.lsp): ${(err as Error).message}`,
        "  install Splice into that interpreter, or set splice.python");
      this.client = undefined;
    }
  }

  private async stopLanguageServer(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop();
      } catch {
        // already gone
      }
    }
  }

  private async restartLanguageServer(): Promise<void> {
    await this.stopLanguageServer();
    await this.startLanguageServer();
  }
}
