/**
 * Which project root holds a file, the module path the cluster knows it by (relative to that root, with
 * `/`), and the `splice.exclude` globs.
 */
import * as path from "node:path";

/** The deepest root that holds `file` (both absolute), or `undefined`. */
export function findProjectRoot(file: string, roots: readonly string[], p: typeof path = path): string | undefined {
  let best: string | undefined;
  for (const root of roots) {
    const rel = p.relative(root, file);
    if (rel && !rel.startsWith("..") && !p.isAbsolute(rel) && (!best || root.length > best.length)) best = root;
  }
  return best;
}

/** `file` relative to `root`, with `/` separators: the module path the admin API takes. */
export function modulePath(root: string, file: string, p: typeof path = path): string {
  return p.relative(root, file).split(p.sep).join("/");
}

/** A glob as a regular expression: `**` any number of segments, `*` and `?` within one, `{a,b}` either. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  let inBraces = false;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          re += "(?:.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "{") {
      inBraces = true;
      re += "(?:";
    } else if (c === "}" && inBraces) {
      inBraces = false;
      re += ")";
    } else if (c === "," && inBraces) re += "|";
    else re += c.replace(/[.+^$()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * Whether a module path (relative to its root, `/`-separated) matches one of `globs`. A glob without a `/`
 * matches the file name anywhere (as in `.gitignore`): `conftest.py` is `** /conftest.py`.
 */
export function isExcluded(relPath: string, globs: readonly string[]): boolean {
  return globs.some((glob) => {
    const g = glob.replace(/\\/g, "/").replace(/^\.\//, "");
    return globToRegExp(g.includes("/") ? g : `**/${g}`).test(relPath);
  });
}

/** Whether a saved file is one to deploy: a `.py` file under a root, not excluded. Its root and module path. */
export function deployable(
  file: string,
  roots: readonly string[],
  exclude: readonly string[],
  p: typeof path = path,
): { root: string; path: string } | undefined {
  if (!file.endsWith(".py")) return undefined;
  const root = findProjectRoot(file, roots, p);
  if (!root) return undefined;
  const rel = modulePath(root, file, p);
  if (isExcluded(rel, exclude)) return undefined;
  return { root, path: rel };
}
