// Refuses a connection pooler that shares server connections between clients. The service needs a
// session of its own on each connection: LISTEN, session advisory locks and named prepared
// statements live in the server process, and a transaction-mode pooler (PgBouncer's
// pool_mode = transaction) hands that process to another client between two transactions.
import pg from 'pg';
import { SESSION_OPTIONS } from './db.ts';

export class PoolerError extends Error {
  override name = 'PoolerError';
}

const CONNECT_TIMEOUT_MS = 10_000;
/** Rounds of the probe: one settles it on a quiet pooler; more cover a pool busy with other clients. */
const ROUNDS = 3;

const SHARED = new PoolerError(
  'database.url: the connections are shared with other clients between transactions (a pooler in transaction or statement mode, such as PgBouncer with pool_mode = transaction); the service needs a session of its own (LISTEN, advisory locks, prepared statements): point database.url at PostgreSQL itself or at a session-mode pool',
);

async function backendPid(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

async function connect(url: string, options?: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    application_name: 'order-webhooks check',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    ...(options ? { options } : {}),
  });
  client.on('error', () => undefined); // a failed query rejects; a later socket error has nobody to tell
  await client.connect();
  return client;
}

/**
 * Throws a PoolerError when `url` leads to a pool whose server connections change hands between
 * transactions. Directly or through a session-mode pool, a client's backend is its own until it
 * disconnects: its pid never changes and no other client runs in it. So a second client opens a
 * transaction: if that runs in the first client's backend, or the first client's next statement
 * runs in another backend, the connections are shared. A pooler that returns the most recently
 * used server connection first (PgBouncer's default) gives the first client's backend to the second.
 */
export async function checkSessionConnections(url: string): Promise<void> {
  const first = await connect(url);
  let second: pg.Client | undefined;
  try {
    second = await connect(url);
    for (let round = 0; round < ROUNDS; round++) {
      const before = await backendPid(first);
      try {
        await second.query('BEGIN');
      } catch (error) {
        // PgBouncer in statement mode refuses transaction blocks outright.
        if (/statement pooling/i.test((error as Error).message)) throw SHARED;
        throw error;
      }
      try {
        if ((await backendPid(second)) === before || (await backendPid(first)) !== before) throw SHARED;
      } finally {
        await second.query('COMMIT').catch(() => undefined); // the probe's own read-only transaction
      }
    }
  } finally {
    await Promise.all([first.end().catch(() => undefined), second?.end().catch(() => undefined)]);
  }
  // The pool sets planner settings in the startup packet; PgBouncer refuses that parameter unless
  // told to ignore it. Said here in one line rather than as the pool's first failed query.
  let withOptions: pg.Client;
  try {
    withOptions = await connect(url, SESSION_OPTIONS);
  } catch (error) {
    if (!/unsupported startup parameter/i.test((error as Error).message)) throw error;
    throw new PoolerError(
      `database.url: the server refused the startup parameter "options" that the service's connections use to set ${SESSION_OPTIONS} (${(error as Error).message}); a pooler such as PgBouncer does so: point database.url at PostgreSQL itself`,
    );
  }
  await withOptions.end().catch(() => undefined);
}
