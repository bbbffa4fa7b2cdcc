// PostgreSQL connections, names and lock keys.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from './log.ts';

export const { escapeIdentifier: ident, escapeLiteral: literal } = pg;

export function createPool(url: string, log: Logger, max: number): pg.Pool {
  // Every statement of ours finds its rows by an index (the journal's front, outbox rows by id, an
  // order's pending event, what is due), and the statistics of a queue are nearly always stale: with
  // autovacuum late or off, ANALYZE saw an empty outbox when it holds 100,000 rows. A plan built on
  // them read the whole outbox once per claimed change (a sequential scan in a sub-select), seconds
  // per batch. So on our own connections a sequential scan is priced out wherever an index serves,
  // and there is no JIT, which an inflated cost estimate would otherwise buy (30+ ms a statement).
  const pool = new pg.Pool({ connectionString: url, max, application_name: 'order-webhooks', options: '-c enable_seqscan=off -c jit=off' });
  // An idle client whose connection dies emits here; the pool drops it and opens a new one on demand.
  pool.on('error', (error) => log.warn({ error: error.message }, 'database connection lost; it will be reopened'));
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
  const parts = [e.message ?? String(error)];
  if (e.code) parts.push(`(${e.code})`);
  if (e.detail) parts.push(`- ${e.detail}`);
  if (e.hint) parts.push(`hint: ${e.hint}`);
  return parts.join(' ');
}
