/**
 * A real one-server Splice cluster for tests, started with the repository's `splice` command
 * (`$SPLICE_BIN`, default `../.venv/bin/splice` relative to vscode-extension/).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const SPLICE = path.resolve(path.resolve(__dirname, "../../.."), process.env.SPLICE_BIN ?? "../.venv/bin/splice");

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

export interface TestCluster {
  dir: string;
  /** The server's URL. */
  url: string;
  token: string;
  debugPort: number;
  stop(): Promise<void>;
}

/** `splice quickstart create DIR --servers 1 --no-load-balancer` on free ports, then `splice start DIR`. */
export async function startCluster(): Promise<TestCluster> {
  assert.ok(existsSync(SPLICE), `the splice command is not at ${SPLICE}; set SPLICE_BIN`);
  const dir = await mkdtemp(path.join(tmpdir(), "splice-vscode-"));
  let port: number;
  do port = await freePort();
  while (port >= 65000 || !(await portIsFree(port + 1)));
  const debugPort = await freePort();
  const stop = async () => {
    try {
      await run(SPLICE, ["stop", dir], { timeout: 60_000 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    await run(SPLICE, ["quickstart", "create", dir, "--port", String(port), "--servers", "1", "--no-load-balancer"]);
    await appendFile(path.join(dir, "cluster.toml"), `\n[debug]\nport = ${debugPort}\n`);
    await run(SPLICE, ["start", dir], { timeout: 60_000 });
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const token = (await readFile(path.join(dir, "admin-token"), "utf8")).trim();
  return { dir, url: `http://127.0.0.1:${port + 1}`, token, debugPort, stop };
}

export const SERVICE = (name: string, greeting: string) => `from splice.server import Service


class Hello(Service):
    name = "${name}"

    def handle(self) -> None:
        self.response.payload = {"greeting": "${greeting}", "input": self.request.payload}
`;
