// A private PgBouncer (Debian's `pgbouncer`) in front of the test server: its own ini in a temp
// folder, 127.0.0.1 and a free port, trust auth. PgBouncer refuses to run as root, so as root it
// runs as nobody (setpriv execs it, so the child is PgBouncer itself and a signal reaches it).
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverUrl } from './db.ts';
import { waitFor } from './poll.ts';
import { toolPath } from './tools.ts';

export type PoolMode = 'session' | 'transaction' | 'statement';

export interface PgBouncer {
  port: number;
  /** A URL for `database` through this PgBouncer, as the user the test server's URL names. */
  url(database: string): string;
  output(): string;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export async function startPgBouncer({
  mode,
  ignoreStartupParameters = [],
  roundRobin = false,
}: {
  mode: PoolMode;
  ignoreStartupParameters?: string[];
  /** server_round_robin: hand out the server connection idle longest instead of the one used last. */
  roundRobin?: boolean;
}): Promise<PgBouncer> {
  // Tests that get here asked for it with itNeeding('pgbouncer'), which skips them without it.
  const pgbouncer = toolPath('pgbouncer') ?? 'pgbouncer';
  const server = new URL(serverUrl());
  const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-pgbouncer-'));
  chmodSync(dir, 0o755); // readable by the unprivileged user it runs as
  const user = decodeURIComponent(server.username || 'postgres');
  const password = decodeURIComponent(server.password);
  const authFile = join(dir, 'users.txt');
  writeFileSync(authFile, `"${user}" ""\n`, { mode: 0o644 });
  const target = [`host=${server.hostname}`, `port=${server.port || 5432}`, ...(password ? [`user=${user}`, `password=${password}`] : [])];
  // A port taken between freePort() and PgBouncer's bind is retried with another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const ini = join(dir, 'pgbouncer.ini');
    writeFileSync(
      ini,
      [
        '[databases]',
        `* = ${target.join(' ')}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = trust',
        `auth_file = ${authFile}`,
        `pool_mode = ${mode}`,
        'default_pool_size = 10',
        `server_round_robin = ${roundRobin ? 1 : 0}`,
        `ignore_startup_parameters = ${['extra_float_digits', ...ignoreStartupParameters].join(',')}`,
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
    const asRoot = process.getuid?.() === 0;
    const child: ChildProcess = asRoot
      ? spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', pgbouncer, ini], {
          stdio: ['ignore', 'pipe', 'pipe'],
        })
      : spawn(pgbouncer, [ini], { stdio: ['ignore', 'pipe', 'pipe'] });
    const reap = () => child.kill('SIGKILL');
    process.on('exit', reap);
    let output = '';
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    child.on('exit', () => process.removeListener('exit', reap));
    await waitFor(() => /listening on 127\.0\.0\.1:/.test(output) || child.exitCode !== null || child.signalCode !== null, {
      what: 'pgbouncer to listen',
    });
    if (child.exitCode !== null || child.signalCode !== null) {
      if (/already in use/i.test(output) && attempt < 5) continue;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start:\n${output}`);
    }
    return {
      port,
      url: (database) => {
        const url = new URL(server.toString());
        url.port = String(port);
        url.hostname = '127.0.0.1';
        url.pathname = `/${database}`;
        return url.toString();
      },
      output: () => output,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}
