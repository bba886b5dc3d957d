/**
 * Debug configurations from the cluster's attach points: one debugpy "attach" per server process, its project
 * root mapped onto the directory that process runs deployed modules from (as `splice vscode launch` writes them).
 * A server of several workers lists an attach point per worker ("Splice: attach to server1 worker 2"): a
 * breakpoint hits whichever worker takes the request, so the compound attaches to all of them.
 */
import { AdminClient, AdminError, AttachPoint, DebugInfo } from "./admin";
import { connectHost } from "./cluster";

export const PREFIX = "Splice: ";

export interface AttachConfiguration {
  name: string;
  type: "debugpy";
  request: "attach";
  connect: { host: string; port: number };
  pathMappings: Array<{ localRoot: string; remoteRoot: string }>;
  justMyCode: boolean;
  stopAllThreadsOnSuspend: boolean;
  [key: string]: unknown;
}

export function attachConfiguration(point: AttachPoint, localRoot: string): AttachConfiguration {
  return {
    name: `${PREFIX}attach to ${pointLabel(point)}`,
    type: "debugpy",
    request: "attach",
    connect: { host: connectHost(point.host), port: point.port },
    pathMappings: [{ localRoot, remoteRoot: point.remote_root }],
    justMyCode: true,
    // A breakpoint stops its own thread only; debugpy's default stops every thread, the event loop included.
    stopAllThreadsOnSuspend: false,
  };
}

/** `server1`, or `server1 worker 2` for a worker of a server of several. */
export function pointLabel(point: AttachPoint): string {
  return point.worker ? `${point.server} worker ${point.worker}` : point.server;
}

export interface ServerDebugState {
  server: string;
  url: string;
  info?: DebugInfo;
  error?: AdminError;
}

/** Each server of the cluster and its debug state (`GET cluster`, then `GET debug` on each server). */
export async function clusterDebugStates(client: AdminClient): Promise<ServerDebugState[]> {
  const cluster = await client.cluster();
  const servers = cluster.servers.filter((s) => s.live !== false && s.url);
  if (!servers.length) {
    const info = await client.debug();
    return [{ server: info.server, url: client.baseUrl, info }];
  }
  return Promise.all(
    servers.map(async (s): Promise<ServerDebugState> => {
      const url = rewriteWildcard(s.url);
      try {
        return { server: s.name, url, info: await client.forServer(url).debug() };
      } catch (err) {
        if (err instanceof AdminError) return { server: s.name, url, error: err };
        throw err;
      }
    }),
  );
}

function rewriteWildcard(url: string): string {
  try {
    const u = new URL(url);
    const host = u.hostname.replace(/^\[|\]$/g, "");
    const connect = connectHost(host);
    if (connect !== host) u.hostname = connect.includes(":") ? `[${connect}]` : connect;
    return u.toString().replace(/\/+$/, "");
  } catch {
    return url;
  }
}

/**
 * The attach configurations of the servers that listen, and a note for each one that does not. Each worker of a
 * server of several answers with the attach points of all of them: each configuration is kept once, by name.
 */
export function attachConfigurations(
  states: readonly ServerDebugState[],
  localRoot: string,
): { configurations: AttachConfiguration[]; notes: string[] } {
  const configurations: AttachConfiguration[] = [];
  const notes: string[] = [];
  const named = new Set<string>();
  for (const state of states) {
    if (state.error) notes.push(`${state.server}: ${state.error.message}`);
    else if (!state.info?.enabled || !state.info.attach_points.length) {
      notes.push(`${state.server}: debugging is off (run 'splice debug enable' or let the extension enable it)`);
    } else {
      for (const point of state.info.attach_points) {
        const configuration = attachConfiguration(point, localRoot);
        if (named.has(configuration.name)) continue;
        named.add(configuration.name);
        configurations.push(configuration);
      }
    }
  }
  return { configurations, notes };
}
