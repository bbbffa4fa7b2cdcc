// How many delivered events the outbox keeps: the history, which retention lets grow to 30 days of
// events (hundreds of millions of rows). Counting them exactly reads every one, so `status` and the
// page count exactly only up to EXACT_UP_TO; beyond, they show PostgreSQL's own estimate (the
// planner's, from the statistics ANALYZE and autovacuum keep), marked as such. What waits and what
// failed are always counted exactly (status.ts readCounts): those rows are few and indexed.
import { type Db, ident, literal } from '../db.ts';

/** Delivered events counted one by one at most; more are estimated. */
export const EXACT_UP_TO = 10_000;

export interface DeliveredCounts {
  /** Every endpoint's delivered events together. */
  total: number;
  /** Whether the numbers are the planner's estimates (more than EXACT_UP_TO delivered events). */
  estimated: boolean;
  /** Per endpoint, for the endpoints with delivered events found (every one when exact). */
  endpoints: Map<string, number>;
}

/** The planner's estimate of the rows `sql` returns (EXPLAIN only plans it). */
async function estimateRows(db: Db, sql: string): Promise<number> {
  const { rows } = await db.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(`EXPLAIN (FORMAT JSON) ${sql}`);
  return Math.round(rows[0]!['QUERY PLAN'][0].Plan['Plan Rows']);
}

/**
 * Delivered events, in all and per endpoint: exact while there are at most EXACT_UP_TO of them,
 * else estimated for `endpoints` and for those a bounded count met (an endpoint removed from the
 * config whose every event is delivered may be left out then). The planner's estimate decides
 * first whether counting is worth trying, so a large history is never read.
 * With `endpoint`, that endpoint's only.
 */
export async function deliveredCounts(db: Db, schema: string, endpoints: readonly string[], endpoint?: string): Promise<DeliveredCounts> {
  const s = ident(schema);
  const of = endpoint === undefined ? '' : ` AND endpoint = ${literal(endpoint)}`;
  const estimate = await estimateRows(db, `SELECT 1 FROM ${s}.outbox WHERE status = 'delivered'${of}`);
  let rows: { endpoint: string; n: number }[] = [];
  // Counted when the statistics say they may be few (or are stale: the count finds out), reading at
  // most EXACT_UP_TO + 1 rows whatever the outbox holds.
  if (estimate <= 2 * EXACT_UP_TO) {
    ({ rows } = await db.query<{ endpoint: string; n: number }>(
      `SELECT endpoint, count(*)::int AS n
         FROM (SELECT endpoint FROM ${s}.outbox WHERE status = 'delivered'${of} LIMIT ${EXACT_UP_TO + 1}) d
        GROUP BY endpoint ORDER BY endpoint`,
    ));
    const counted = rows.reduce((sum, row) => sum + row.n, 0);
    if (counted <= EXACT_UP_TO) {
      return { total: counted, estimated: false, endpoints: new Map(rows.map((row) => [row.endpoint, row.n])) };
    }
  }
  const total = Math.max(EXACT_UP_TO + 1, estimate);
  const names = endpoint === undefined ? new Set([...endpoints, ...rows.map((row) => row.endpoint)]) : new Set([endpoint]);
  const sampled = new Map(rows.map((row) => [row.endpoint, row.n]));
  const per = new Map<string, number>();
  for (const name of names) {
    if (names.size === 1) {
      per.set(name, total);
      continue;
    }
    const estimate = await estimateRows(db, `SELECT 1 FROM ${s}.outbox WHERE status = 'delivered' AND endpoint = ${literal(name)}`);
    per.set(name, Math.max(sampled.get(name) ?? 0, estimate));
  }
  return { total, estimated: true, endpoints: per };
}
