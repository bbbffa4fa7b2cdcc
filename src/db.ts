// PostgreSQL connections, names and lock keys.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from './log.ts';

export const { escapeIdentifier: ident, escapeLiteral: literal } = pg;

/** Anything that runs a query: a pool, a pooled or a single client. */
export type Db = pg.ClientBase | pg.Pool;

/** Settings every connection of the service's pool sets in its startup packet (see createPool). */
export const SESSION_OPTIONS = '-c enable_seqscan=off -c jit=off';

/** How long opening a connection may take (TCP, TLS and start-up) before it counts as failed. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** TCP keepalive: probes start after this long without traffic, on our side and the server's. */
export const KEEPALIVE_IDLE_MS = 10_000;
/** The server's keepalive probes: every 5 s, 3 unanswered ones end the session (and its locks). */
const SERVER_KEEPALIVES = '-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3';
/**
 * A statement the server has not answered this long after its statement_timeout would have
 * cancelled it: the connection is deemed dead (a firewall, a NAT or a failover dropped it without
 * a FIN or RST), dropped and replaced. Only pg's client-side query_timeout notices a silent socket.
 */
export const ANSWER_GRACE_MS = 2000;

/** The client-side timeout that declares a connection dead, for a given `database.statementTimeout`. */
export const answerTimeoutMs = (statementTimeoutMs: number): number => statementTimeoutMs + ANSWER_GRACE_MS;

/** Settings for every connection of the running service: bounded connect, keepalive, timeouts. */
export function connectionConfig(
  url: string,
  applicationName: string,
  {
    statementTimeoutMs,
    answerTimeoutMs: answerMs = answerTimeoutMs(statementTimeoutMs),
    options = '',
  }: {
    statementTimeoutMs: number;
    answerTimeoutMs?: number;
    options?: string;
  },
): pg.ClientConfig {
  return {
    connectionString: url,
    application_name: applicationName,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
    query_timeout: answerMs,
    options: `-c statement_timeout=${statementTimeoutMs} ${SERVER_KEEPALIVES}${options ? ` ${options}` : ''}`,
  };
}

/** pg's error when a query got no answer within query_timeout. */
export function isAnswerTimeout(error: unknown): boolean {
  return error instanceof Error && error.message === 'Query read timeout';
}

/** How long an unused pool connection stays open (pg-pool's default, made explicit: docs/operations.md). */
export const POOL_IDLE_MS = 10_000;

export function createPool(url: string, log: Logger, max: number, statementTimeoutMs: number): pg.Pool {
  // Every statement of ours finds its rows by an index (the journal's front, outbox rows by id, an
  // order's pending event, what is due), and the statistics of a queue are nearly always stale: with
  // autovacuum late or off, ANALYZE saw an empty outbox when it holds 100,000 rows. A plan built on
  // them read the whole outbox once per claimed change (a sequential scan in a sub-select), seconds
  // per batch. So on our own connections a sequential scan is priced out wherever an index serves,
  // and there is no JIT, which an inflated cost estimate would otherwise buy (tens of ms a statement).
  const pool = new pg.Pool({
    ...connectionConfig(url, 'order-webhooks', { statementTimeoutMs, options: SESSION_OPTIONS }),
    max,
    idleTimeoutMillis: POOL_IDLE_MS,
  });
  // An idle client whose connection dies emits here; the pool drops it and opens a new one on demand.
  pool.on('error', (error) => log.warn({ error: error.message }, 'database connection lost; it will be reopened'));
  // A query that timed out releases its client with the error, and the pool closes that client.
  pool.on('release', (error: Error | undefined) => {
    if (isAnswerTimeout(error)) {
      log.warn(
        { answerTimeoutMs: answerTimeoutMs(statementTimeoutMs) },
        'database connection gave no answer in time; it is closed and replaced by a new one',
      );
    }
  });
  return pool;
}

/** A stable advisory-lock key (signed 64-bit, as text) for one purpose within our schema. */
export function lockKey(schema: string, purpose: 'migrate' | 'wake' | 'retention'): string {
  const digest = createHash('sha256').update(`order-webhooks:${schema}:${purpose}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/** A name for a prepared statement of ours, distinct per schema (names are per connection). */
export function statementName(schema: string, purpose: string): string {
  return `ow ${purpose} ${createHash('sha256').update(schema).digest('hex').slice(0, 12)}`;
}

/** The NOTIFY channel the trigger wakes listeners on. */
export function wakeChannel(schema: string): string {
  return `${schema}_wake`.slice(0, 63);
}

/** A database error as one line: message, code and the object it names; never connection secrets. */
export function describeDbError(error: unknown): string {
  const e = error as Partial<pg.DatabaseError> & { code?: string; message?: string };
  if (!e || typeof e !== 'object') return String(error);
  if (isAnswerTimeout(error)) return 'no answer from the database in time (the connection is presumed dead and replaced)';
  const parts = [e.message ?? String(error)];
  if (e.code) parts.push(`(${e.code})`);
  if (e.detail) parts.push(`- ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}
