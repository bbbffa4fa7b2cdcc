// W7's history: an outbox pre-filled with delivered events and their attempts, written by SQL
// (generate_series), not by delivering them. Everything that knows the outbox's columns is in
// PREFILL below, so that a change of the outbox's shape changes this file only.
// The secondary indexes are dropped while the rows go in and built again afterwards from their own
// definitions (pg_indexes), as a real install has them; the constraints' indexes (primary keys,
// unique event ids) stay. Triggers (the foreign key's too) are off for the inserts: the rows are
// consistent by construction.
import type pg from 'pg';

/** Rows per INSERT: a progress line each, and no transaction holding the whole history. */
const BATCH = 1_000_000;

/**
 * Outbox rows `$1` to `$2` (1-based, of `$3` in all) spread evenly over the `$4` days before now,
 * oldest first, each delivered at its first try, as the service keeps such an event (migration 11):
 * one outbox row, its body made by event_body(), no attempt row. `:S` is the quoted schema.
 */
const PREFILL = `
  INSERT INTO :S.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, last_status, response_ms,
                         created_at, delivered_at, first_try)
  SELECT i, 'hist-' || (i % 1000000), t.type, NULL, 'delivered', 1, NULL, 200, 3, w.at, w.at, true
    FROM generate_series($1::bigint, $2::bigint) i,
         LATERAL (SELECT now() - make_interval(secs => $4::float8 * 86400 * ($3 - i) / $3) AS at) w,
         LATERAL (SELECT (ARRAY['OrderCreated', 'OrderAccepted', 'OrderSigned', 'OrderExpired'])[1 + i % 4] AS type) t`;

const TABLES = ['outbox', 'outbox_attempt'];

export interface PrefillResult {
  rows: number;
  days: number;
  seconds: number;
  indexSeconds: number;
}

/**
 * Adds `rows` delivered events over the last `days` days to the outbox of `schema`, then VACUUM
 * ANALYZE (what autovacuum would have done over those days).
 */
export async function prefill(
  db: pg.Client,
  schema: string,
  rows: number,
  days: number,
  log: (message: string) => void,
): Promise<PrefillResult> {
  const s = `"${schema}"`;
  const started = Date.now();
  const { rows: indexes } = await db.query<{ name: string; def: string }>(
    `SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
      WHERE i.schemaname = $1 AND i.tablename = ANY($2)
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)`,
    [schema, TABLES],
  );
  for (const index of indexes) await db.query(`DROP INDEX ${s}."${index.name}"`);
  await db.query("SET session_replication_role = 'replica'");
  try {
    for (let from = 1; from <= rows; from += BATCH) {
      const to = Math.min(rows, from + BATCH - 1);
      await db.query(PREFILL.replaceAll(':S', s), [from, to, rows, days]);
      log(`W7 pre-fill: ${to.toLocaleString('en-US')} of ${rows.toLocaleString('en-US')} events`);
    }
  } finally {
    await db.query("SET session_replication_role = 'origin'");
  }
  const indexStarted = Date.now();
  await db.query("SET maintenance_work_mem = '256MB'");
  for (const index of indexes) await db.query(index.def);
  const indexSeconds = (Date.now() - indexStarted) / 1000;
  await db.query(`VACUUM (ANALYZE) ${TABLES.map((t) => `${s}.${t}`).join(', ')}`);
  return { rows, days, seconds: (Date.now() - started) / 1000, indexSeconds };
}
