// Refuses a connection pooler that shares server connections between clients. The service needs a
// session of its own on each connection: LISTEN, session advisory locks and named prepared
// statements live in the server process, and a transaction-mode pooler (PgBouncer's
// pool_mode = transaction) hands that process to another client between two transactions.
import type pg from 'pg';
import { openClient, SESSION_OPTIONS } from '../db.ts';
import { PoolerError } from '../errors.ts';

/** The probe's statements are instant; one unanswered this long means a dead connection. */
const PROBE_ANSWER_MS = 10_000;
/** Rounds of the probe: one settles it on a pool nobody else uses; more cover a pool busy with other clients. */
const ROUNDS = 3;

const SHARED = new PoolerError(
  'database.url: the connections are shared with other clients between transactions (a pooler in transaction or statement mode, such as PgBouncer with pool_mode = transaction); the service needs a session of its own (LISTEN, advisory locks, prepared statements): point database.url at PostgreSQL itself or at a session-mode pool',
);

async function backendPid(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  return rows[0]!.pid;
}

// Nothing in the startup packet but what is probed for: a pooler that refuses it would fail the
// first connection, before the probe could tell a shared pool from a refused parameter.
function connect(url: string, options?: string): Promise<pg.Client> {
  return openClient(url, {
    name: 'order-webhooks check',
    statementTimeoutMs: null,
    answerTimeoutMs: PROBE_ANSWER_MS,
    startupOptions: options !== undefined,
    ...(options ? { options } : {}),
  });
}

/**
 * Throws a PoolerError when `url` leads to a pool whose server connections change hands between
 * transactions. Directly or through a session-mode pool, a client's backend is its own until it
 * disconnects: each client sees one pid, and no other client sees it. So two clients take turns,
 * the second inside a transaction (which keeps its server connection from the first), and any pid
 * seen twice across them, or a client seeing two, means the connections are shared. PgBouncer's
 * default (the server connection used last goes out first) and its round-robin mode both show it.
 */
export async function checkSessionConnections(url: string, { startupOptions = true } = {}): Promise<void> {
  const first = await connect(url);
  let second: pg.Client | undefined;
  try {
    second = await connect(url);
    const seen = [new Set<number>(), new Set<number>()] as const;
    const shared = () => seen[0].size > 1 || seen[1].size > 1 || [...seen[0]].some((pid) => seen[1].has(pid));
    for (let round = 0; round < ROUNDS && !shared(); round++) {
      seen[0].add(await backendPid(first));
      try {
        await second.query('BEGIN');
      } catch (error) {
        // PgBouncer in statement mode refuses transaction blocks outright.
        if (/statement pooling/i.test((error as Error).message)) throw SHARED;
        throw error;
      }
      try {
        seen[1].add(await backendPid(second));
        // Not when the second runs in the first's backend: on a pool of one, that would wait for ever.
        if (!shared()) seen[0].add(await backendPid(first));
      } finally {
        await second.query('COMMIT').catch(() => undefined); // the probe's own read-only transaction
      }
      seen[1].add(await backendPid(second));
    }
    if (shared()) throw SHARED;
  } finally {
    await Promise.all([first.end().catch(() => undefined), second?.end().catch(() => undefined)]);
  }
  // The pool sets planner settings in the startup packet; PgBouncer refuses that parameter unless
  // told to ignore it. Said here in one line rather than as the pool's first failed query.
  if (!startupOptions) return;
  let withOptions: pg.Client;
  try {
    withOptions = await connect(url, SESSION_OPTIONS);
  } catch (error) {
    const refusal = ((error as Error).cause as Error | undefined)?.message ?? '';
    if (!/unsupported startup parameter/i.test(refusal)) throw error;
    throw new PoolerError(
      `database.url: the server refused the startup parameter "options" that the service's connections use to set ${SESSION_OPTIONS} (${refusal}); a pooler such as PgBouncer does so: point database.url at PostgreSQL itself (docs/security.md, "Connection poolers")`,
    );
  }
  await withOptions.end().catch(() => undefined);
}
