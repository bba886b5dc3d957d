/**
 * What a deploy's answer means for the editor: the status bar's text and tooltip (each server's outcome),
 * the output channel's lines, and the diagnostics of a refused deploy.
 */
import { AdminError, DeployAnswer, Problem, ServerOutcome, UndeployAnswer } from "./admin";

export type Level = "ok" | "warning" | "error";

export interface StatusSummary {
  level: Level;
  /** Status bar text, with a codicon. */
  text: string;
  tooltip: string;
  /** Lines for the output channel. */
  lines: string[];
}

const MARK: Record<string, string> = { deployed: "✓", undeployed: "✓", failed: "✗", timed_out: "⧗", unreachable: "✗" };
const ICON: Record<Level, string> = { ok: "$(check)", warning: "$(warning)", error: "$(error)" };

function serverText(s: ServerOutcome): string {
  return `${s.server} ${MARK[s.status] ?? s.status}`;
}

function serverLine(s: ServerOutcome): string {
  const parts = [`  ${s.server}: ${s.status}`];
  if (s.sequence !== undefined && s.sequence !== null) parts.push(`sequence ${s.sequence}`);
  if (typeof s.ms === "number") parts.push(`${Math.round(s.ms)} ms`);
  if (s.error) parts.push(`error: ${s.error}`);
  return parts.join(", ");
}

function ms(value: number | undefined): string {
  return typeof value === "number" ? ` (${Math.round(value)} ms)` : "";
}

/** Epoch milliseconds of one deploy: the save, the deploy's start, the request sent, the answer received. */
export interface DeployTiming {
  savedAt: number;
  started: number;
  sent: number;
  answered: number;
  /** `savedAt` is when the save began (before the file was written), not when it ended. */
  early?: boolean;
}

/** Local time of day with milliseconds, `12:34:56.789`. */
export function clock(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

/**
 * Where the time of a deploy went, for the output channel (the save's time of day lets a reader line it up with
 * others): `serverMs` is the deploy's own time in the server asked, `servers` the others' times (each from that
 * server's notice to its confirmation).
 */
export function timingLine(t: DeployTiming, serverMs?: number, servers: readonly ServerOutcome[] = []): string {
  const others = servers.filter((s) => typeof s.ms === "number").map((s) => `, ${s.server} ${Math.round(s.ms as number)} ms`).join("");
  const server = typeof serverMs === "number" ? ` (the server's own ${Math.round(serverMs)} ms${others})` : "";
  return `  ${t.early ? "save began" : "saved"} at ${clock(t.savedAt)}, answered ${t.answered - t.savedAt} ms later: waited ${t.started - t.savedAt} ms for a deploy of the file under way, ` +
    `${t.sent - t.started} ms to find the cluster, ${t.answered - t.sent} ms for every server to deploy${server}`;
}

/** `label` names what was deployed: a file name, or "3 files"; `timing` adds a line saying where the time went. */
export function deploySummary(label: string, answer: DeployAnswer, timing?: DeployTiming): StatusSummary {
  const servers = answer.servers ?? [];
  const ok = answer.status === "deployed" && servers.every((s) => s.status === "deployed");
  const level: Level = ok ? "ok" : servers.some((s) => s.status === "deployed") ? "warning" : "error";
  const serverPart = servers.length ? servers.map(serverText).join(" ") : answer.status;
  const total = answer.timings?.total_ms;
  const services = (answer.modules ?? []).flatMap((m) => m.services ?? []);
  const lines = [`deployed ${label}: ${answer.status}${answer.sequence !== undefined ? `, sequence ${answer.sequence}` : ""}${ms(total)}`];
  for (const m of answer.modules ?? []) {
    const version = m.version !== undefined ? ` v${m.version}` : "";
    const unchanged = m.unchanged ? " (unchanged)" : "";
    lines.push(`  ${m.path}${version}${unchanged}: ${(m.services ?? []).join(", ") || "no services"}`);
  }
  lines.push(...servers.map(serverLine));
  if (timing) lines.push(timingLine(timing, total, servers));
  const tooltip = [
    `Splice: ${label} ${ok ? "deployed" : "deployed partially"}${ms(total)}`,
    ...servers.map((s) => serverLine(s).trim()),
    services.length ? `services: ${services.join(", ")}` : "",
  ]
    .filter((l) => l)
    .join("\n");
  return { level, text: `${ICON[level]} Splice ${label}: ${serverPart}`, tooltip, lines };
}

export function undeploySummary(label: string, answer: UndeployAnswer): StatusSummary {
  const servers = answer.servers ?? [];
  const ok = answer.status === "undeployed" && servers.every((s) => s.status === "deployed");
  const level: Level = ok ? "ok" : "warning";
  const lines = [`undeployed ${label}: ${answer.status}, services removed: ${(answer.services ?? []).join(", ") || "none"}`];
  lines.push(...servers.map(serverLine));
  return {
    level,
    text: `${ICON[level]} Splice undeployed ${label}: ${servers.map(serverText).join(" ") || answer.status}`,
    tooltip: lines.join("\n"),
    lines,
  };
}

export function errorSummary(label: string, err: AdminError, hint = ""): StatusSummary {
  const lines: string[] = [];
  if (err.refused) {
    lines.push(`deploy of ${label} refused: ${err.message}`);
    for (const p of err.problems) {
      lines.push(`  ${problemPlace(p)}: ${p.message}`);
      if (p.traceback) lines.push(...p.traceback.trimEnd().split("\n").map((l) => `    ${l}`));
    }
    const first = err.problems[0];
    return {
      level: "error",
      text: `$(error) Splice ${label}: refused, ${problemPlace(first)}`,
      tooltip: lines.slice(0, 1 + err.problems.length).join("\n"),
      lines,
    };
  }
  lines.push(`${label}: ${err.message}${err.status ? ` (HTTP ${err.status}, ${err.code})` : ""}`);
  if (hint) lines.push(`  ${hint}`);
  const short = err.status === 0 ? "cluster unreachable" : err.status === 401 ? "token refused" : `${err.code}`;
  return { level: "error", text: `$(error) Splice ${label}: ${short}`, tooltip: lines.join("\n"), lines };
}

export function problemPlace(p: Problem): string {
  return [p.path, p.line ?? undefined, p.column ?? undefined].filter((x) => x !== undefined).join(":");
}

/** A diagnostic as plain data: 0-based lines and characters, as VS Code's `Range` takes them. */
export interface DiagnosticData {
  startLine: number;
  startCharacter: number;
  endLine: number;
  endCharacter: number;
  message: string;
  /** The problem's kind (`syntax`, `import`, ...), the diagnostic's code. */
  code: string;
}

/**
 * The range a problem marks in a document whose lines are `lines`: at a column, the word (or character)
 * there; without one, the line from its first non-blank character. Lines and columns from the server are
 * 1-based; a line past the end marks the last line.
 */
export function problemDiagnostic(problem: Problem, lines: readonly string[]): DiagnosticData {
  const lastLine = Math.max(lines.length - 1, 0);
  const line = Math.min(Math.max((problem.line ?? 1) - 1, 0), lastLine);
  const text = lines[line] ?? "";
  let start: number;
  let end: number;
  if (problem.column !== null && problem.column !== undefined) {
    start = Math.min(Math.max(problem.column - 1, 0), text.length);
    const word = /^\w+/.exec(text.slice(start));
    end = word ? start + word[0].length : Math.min(start + 1, text.length);
    if (end === start && text.length) start = Math.max(end - 1, 0); // a place at the end of the line
  } else {
    start = text.length - text.trimStart().length;
    end = text.length;
  }
  const message = problem.traceback ? `${problem.message}\n\n${lastFrames(problem.traceback)}` : problem.message;
  return { startLine: line, startCharacter: start, endLine: line, endCharacter: end, message, code: problem.kind ?? "deploy" };
}

/** The traceback's last frames: what the user's code did, without the loader's frames above it. */
function lastFrames(traceback: string, keep = 6): string {
  const lines = traceback.trimEnd().split("\n");
  return lines.length <= keep + 1 ? lines.join("\n") : [lines[0], "  ...", ...lines.slice(-keep)].join("\n");
}

/** Problems grouped by module path (as the server names them). */
export function problemsByPath(problems: readonly Problem[]): Map<string, Problem[]> {
  const out = new Map<string, Problem[]>();
  for (const p of problems) {
    const list = out.get(p.path) ?? [];
    list.push(p);
    out.set(p.path, list);
  }
  return out;
}
