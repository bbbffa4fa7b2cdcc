// A bench database of its own for W7 and W9 (run.ts's own is bound to its one database): the orders
// table, the service's config and schema, and the order app's single-row commits.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { now } from './clock.ts';

export const ORDERS = 100_000;
export const SECRET = 'bench-secret';
const BIN = new URL('../bin/order-webhooks.js', import.meta.url).pathname;

export interface Commit {
  sent: number;
  ack: number;
}

export interface BenchDb {
  url: string;
  db: pg.Client;
  configPath: string;
  /** Writes the config again with `changes` merged in at the top level (retention, http, webHook). */
  reconfigure(changes: Record<string, unknown>): void;
  drop(): Promise<void>;
}

/** Creates database `name` on `serverUrl` with ORDERS orders, a config sending to `receiverUrl`, migrated. */
export async function createBenchDb(
  serverUrl: string,
  name: string,
  receiverUrl: string,
  extra: Record<string, unknown> = {},
): Promise<BenchDb> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const db = new pg.Client({ connectionString: url.toString(), application_name: 'bench' });
  await db.connect();
  await db.query('CREATE TABLE orders (id bigint PRIMARY KEY, state text NOT NULL, due_date date, note text)');
  await db.query(`INSERT INTO orders SELECT i, 'created', date '2027-01-01' + (i % 365), 'bench' FROM generate_series(1, ${ORDERS}) i`);
  await db.query('VACUUM ANALYZE orders');
  const configPath = join(mkdtempSync(join(tmpdir(), `order-webhooks-${name}-`)), 'config.json');
  const base = {
    webHook: { enabled: true, endpoint: receiverUrl, secret: SECRET, concurrency: 32 },
    database: { url: url.toString() },
    orders: { table: 'orders', idColumn: 'id', stateColumn: 'state', dueDateColumn: 'due_date' },
    logLevel: 'info',
  };
  const reconfigure = (changes: Record<string, unknown>) =>
    writeFileSync(configPath, JSON.stringify({ ...base, ...extra, ...changes }, null, 2));
  reconfigure({});
  execFileSync(process.execPath, [BIN, 'migrate', '--config', configPath], { stdio: ['ignore', 'ignore', 'inherit'] });
  return {
    url: url.toString(),
    db,
    configPath,
    reconfigure,
    drop: async () => {
      await db.end().catch(() => undefined);
      const a = new pg.Client({ connectionString: serverUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** Single-row state changes of orders `ids`, one transaction each, from `connections` connections (as run.ts's). */
export async function commitChanges(
  url: string,
  ids: number[],
  state: string,
  connections: number,
  perSecond?: number,
): Promise<Map<number, Commit>> {
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const client = new pg.Client({ connectionString: url, application_name: 'bench order app' });
      await client.connect();
      return client;
    }),
  );
  const commits = new Map<number, Commit>();
  const start = now() + 20;
  let next = 0;
  try {
    await Promise.all(
      clients.map(async (client) => {
        while (next < ids.length) {
          const i = next++;
          if (perSecond) {
            const wait = start + (i * 1000) / perSecond - now();
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          }
          const id = ids[i]!;
          const sent = now();
          await client.query({ name: 'change', text: 'UPDATE orders SET state = $2 WHERE id = $1', values: [id, state] });
          commits.set(id, { sent, ack: now() });
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return commits;
}

export const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);
