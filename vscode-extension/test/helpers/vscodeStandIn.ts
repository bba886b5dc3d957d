/**
 * A small stand-in for the `vscode` module: enough of the API for `dist/extension.js` to activate, register
 * its commands and providers, and show what it did (status bar, diagnostics, output, opened documents).
 * Not VS Code: what it does not model (the language client's internals) gets inert classes.
 */
import { readFileSync } from "node:fs";
import Module from "node:module";
import * as path from "node:path";

export class Uri {
  readonly scheme = "file";
  private constructor(readonly fsPath: string, private readonly text?: string) {}
  static file(p: string): Uri {
    return new Uri(path.resolve(p));
  }
  /** A URL as given (what `env.openExternal` is handed). */
  static parse(value: string): Uri {
    return new Uri(value, value);
  }
  toString(): string {
    return this.text ?? `file://${this.fsPath}`;
  }
}

export class MarkdownString {
  isTrusted: unknown;
  constructor(public value = "", readonly supportThemeIcons = false) {}
  appendText(text: string): this {
    this.value += text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, "\\$&");
    return this;
  }
  appendMarkdown(text: string): this {
    this.value += text;
    return this;
  }
}

export class Range {
  constructor(readonly startLine: number, readonly startCharacter: number, readonly endLine: number, readonly endCharacter: number) {}
}

export class Diagnostic {
  source?: string;
  code?: string;
  constructor(readonly range: Range, readonly message: string, readonly severity: number) {}
}

export interface FakeDocument {
  uri: Uri;
  fileName: string;
  languageId: string;
  getText(): string;
}

export function document(file: string, text: string): FakeDocument {
  return { uri: Uri.file(file), fileName: file, languageId: "python", getText: () => text };
}

type Listener<T> = (value: T) => unknown;

export class StandIn {
  readonly commands = new Map<string, (...args: unknown[]) => unknown>();
  readonly statusBar = { text: "", tooltip: "" as unknown, backgroundColor: undefined as unknown, command: "" as unknown, show() {}, dispose() {} };
  readonly diagnostics = new Map<string, Diagnostic[]>();
  readonly output: string[] = [];
  readonly errors: string[] = [];
  readonly opened: Array<{ language?: string; content?: string }> = [];
  /** What `env.openExternal` was asked to open. */
  readonly external: string[] = [];
  readonly started: unknown[] = [];
  readonly debugProviders = new Map<string, { provideDebugConfigurations(folder: unknown): Promise<unknown[]> }>();
  readonly secrets = new Map<string, string>();
  readonly workspaceState = new Map<string, unknown>();
  readonly textDocuments: FakeDocument[] = [];
  /** Settings of sections other than `splice` (`editor`: `formatOnSave`...), by section. */
  readonly sections: Record<string, Record<string, unknown>> = {};
  /** Answers for showQuickPick / showInputBox / showWarningMessage, in order. */
  readonly answers: unknown[] = [];
  private readonly saveListeners: Listener<FakeDocument>[] = [];
  private readonly willSaveListeners: Listener<{ document: FakeDocument }>[] = [];

  /** `settings` are the `splice.*` values the user set (without the prefix); the rest are package.json's defaults. */
  constructor(readonly workspaceFolder: string, readonly settings: Record<string, unknown>) {
    const manifest = JSON.parse(readFileSync(path.resolve(__dirname, "../../../package.json"), "utf8"));
    for (const [key, spec] of Object.entries<{ default?: unknown }>(manifest.contributes.configuration.properties)) {
      const name = key.replace(/^splice\./, "");
      if (!(name in this.settings)) this.settings[name] = spec.default;
    }
  }

  /**
   * A save as VS Code makes it: the will-save event with the editor's text, then the saved event with `written`
   * (by default the same document; another one when a formatter edited the text while saving).
   */
  save(doc: FakeDocument, written: FakeDocument = doc): void {
    for (const listener of this.willSaveListeners) listener({ document: doc });
    for (const listener of this.saveListeners) listener(written);
  }

  context() {
    const secrets = this.secrets;
    const state = this.workspaceState;
    return {
      subscriptions: [] as Array<{ dispose(): unknown }>,
      secrets: {
        get: async (k: string) => secrets.get(k),
        store: async (k: string, v: string) => void secrets.set(k, v),
        delete: async (k: string) => void secrets.delete(k),
      },
      workspaceState: {
        get: <T>(k: string, d?: T) => (state.has(k) ? (state.get(k) as T) : d),
        update: async (k: string, v: unknown) => void state.set(k, v),
      },
    };
  }

  api(): Record<string, unknown> {
    const self = this;
    const disposable = { dispose() {} };
    const answer = async () => self.answers.shift();
    const api: Record<string, unknown> = {
      Uri, Range, Diagnostic, MarkdownString,
      env: { openExternal: async (uri: Uri) => (self.external.push(uri.toString()), true) },
      ThemeColor: class { constructor(readonly id: string) {} },
      RelativePattern: class { constructor(readonly base: unknown, readonly pattern: string) {} },
      StatusBarAlignment: { Left: 1, Right: 2 },
      DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
      DebugConfigurationProviderTriggerKind: { Initial: 1, Dynamic: 2 },
      ViewColumn: { Active: -1, Beside: -2 },
      window: {
        createOutputChannel: () => ({
          info: (line: string) => void self.output.push(line),
          appendLine: (line: string) => void self.output.push(line),
          show() {},
          dispose() {},
        }),
        createStatusBarItem: () => self.statusBar,
        showErrorMessage: async (m: string) => void self.errors.push(m),
        showInformationMessage: async () => undefined,
        showWarningMessage: answer,
        showQuickPick: answer,
        showInputBox: answer,
        showOpenDialog: answer,
        setStatusBarMessage: () => disposable,
        showTextDocument: async () => undefined,
        get activeTextEditor() {
          const doc = self.textDocuments[self.textDocuments.length - 1];
          return doc && { document: doc };
        },
      },
      workspace: {
        get workspaceFolders() {
          return [{ uri: Uri.file(self.workspaceFolder), name: "ws", index: 0 }];
        },
        get textDocuments() {
          return self.textDocuments;
        },
        getConfiguration: (section = "splice") => {
          const values = section === "splice" ? self.settings : (self.sections[section] ??= {});
          return { get: <T>(key: string, d: T) => (key in values ? (values[key] as T) : d) };
        },
        onDidSaveTextDocument: (l: Listener<FakeDocument>) => (self.saveListeners.push(l), disposable),
        onWillSaveTextDocument: (l: Listener<{ document: FakeDocument }>) => (self.willSaveListeners.push(l), disposable),
        onDidChangeConfiguration: () => disposable,
        openTextDocument: async (arg: { language?: string; content?: string }) => (self.opened.push(arg), arg),
        findFiles: async () => [],
      },
      languages: {
        createDiagnosticCollection: () => ({
          set: (uri: Uri, d: Diagnostic[]) => void self.diagnostics.set(uri.fsPath, d),
          delete: (uri: Uri) => void self.diagnostics.delete(uri.fsPath),
          dispose() {},
        }),
      },
      commands: {
        registerCommand: (id: string, run: (...args: unknown[]) => unknown) => (self.commands.set(id, run), disposable),
      },
      debug: {
        registerDebugConfigurationProvider: (type: string, provider: never) => (self.debugProviders.set(type, provider), disposable),
        startDebugging: async (_folder: unknown, configuration: unknown) => (self.started.push(configuration), true),
      },
      extensions: { getExtension: () => undefined },
    };
    // Anything else (the language client's classes, read when the bundle loads): an inert class.
    return new Proxy(api, { get: (target, key: string) => (key in target ? target[key] : class {}) });
  }

  /** Makes `require("vscode")` return this stand-in. */
  install(): () => void {
    const mod = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
    const original = mod._load;
    const api = this.api();
    mod._load = function (request: string, ...rest: unknown[]) {
      return request === "vscode" ? api : original.call(this, request, ...rest);
    };
    return () => void (mod._load = original);
  }
}
