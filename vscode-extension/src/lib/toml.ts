/**
 * A small reader for the TOML that `splice quickstart` writes (`cluster.toml`): tables, arrays of tables,
 * and `key = value` with strings, numbers, booleans and one-line arrays. Enough to find the cluster's URL;
 * not a general TOML parser (no inline tables, no multi-line strings or arrays).
 */

export type TomlValue = string | number | boolean | TomlValue[];
export type TomlTable = { [key: string]: TomlValue | TomlTable | TomlTable[] };

export class TomlError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

export function parseToml(text: string): TomlTable {
  const root: TomlTable = {};
  let current: TomlTable = root;
  text.split(/\r?\n/).forEach((raw, index) => {
    const lineNo = index + 1;
    const line = stripComment(raw).trim();
    if (!line) return;
    const arrayTable = /^\[\[\s*([^\]]+?)\s*\]\]$/.exec(line);
    if (arrayTable) {
      const [parent, key] = walk(root, arrayTable[1], lineNo);
      const list = (parent[key] ??= []) as TomlTable[];
      if (!Array.isArray(list)) throw new TomlError(lineNo, `${arrayTable[1]} is not an array of tables`);
      current = {};
      list.push(current);
      return;
    }
    const table = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
    if (table) {
      const [parent, key] = walk(root, table[1], lineNo);
      const existing = (parent[key] ??= {});
      if (Array.isArray(existing) || typeof existing !== "object") throw new TomlError(lineNo, `${table[1]} is not a table`);
      current = existing as TomlTable;
      return;
    }
    const eq = line.indexOf("=");
    if (eq <= 0) throw new TomlError(lineNo, `expected 'key = value', got ${JSON.stringify(line)}`);
    const key = unquote(line.slice(0, eq).trim());
    current[key] = parseValue(line.slice(eq + 1).trim(), lineNo);
  });
  return root;
}

function walk(root: TomlTable, dotted: string, lineNo: number): [TomlTable, string] {
  const parts = dotted.split(".").map((p) => unquote(p.trim()));
  let table = root;
  for (const part of parts.slice(0, -1)) {
    let next = (table[part] ??= {});
    if (Array.isArray(next)) next = next[next.length - 1] as TomlTable;
    if (typeof next !== "object" || next === null) throw new TomlError(lineNo, `${part} is not a table`);
    table = next as TomlTable;
  }
  return [table, parts[parts.length - 1]];
}

function unquote(key: string): string {
  if (key.length >= 2 && (key[0] === '"' || key[0] === "'") && key.endsWith(key[0])) return key.slice(1, -1);
  return key;
}

/** The line without a `#` comment (a `#` inside a string stays). */
function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#") return line.slice(0, i);
  }
  return line;
}

function parseValue(text: string, lineNo: number): TomlValue {
  if (text.startsWith('"')) {
    try {
      return JSON.parse(text) as string;
    } catch {
      throw new TomlError(lineNo, `bad string ${text}`);
    }
  }
  if (text.startsWith("'")) {
    if (!text.endsWith("'") || text.length < 2) throw new TomlError(lineNo, `bad string ${text}`);
    return text.slice(1, -1);
  }
  if (text === "true" || text === "false") return text === "true";
  if (text.startsWith("[")) {
    if (!text.endsWith("]")) throw new TomlError(lineNo, "multi-line arrays are not supported");
    const inner = text.slice(1, -1).trim();
    if (!inner) return [];
    return splitTopLevel(inner)
      .map((item) => item.trim())
      .filter((item) => item)
      .map((item) => parseValue(item, lineNo));
  }
  const number = Number(text.replace(/_/g, ""));
  if (text && !Number.isNaN(number)) return number;
  throw new TomlError(lineNo, `unsupported value ${text}`);
}

function splitTopLevel(text: string): string[] {
  const items: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]") depth--;
    else if (c === "," && depth === 0) {
      items.push(text.slice(start, i));
      start = i + 1;
    }
  }
  items.push(text.slice(start));
  return items;
}
