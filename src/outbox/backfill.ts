// Backfill: an endpoint added later gets events for changes recorded before it was added. The
// journal no longer holds those changes, so they are read from the outbox's history: each event
// another endpoint got since a time, made again for this endpoint (same order, type and body), in
// the original order. Events it already has are skipped, so a backfill run twice adds nothing.
import { type Db, ident } from '../db.ts';
import type { EventType } from '../events.ts';
import { backfillEventId } from '../mapping/eventId.ts';
import { type OnBatch, REPLAY_BATCH } from './replay.ts';

export interface BackfillScope {
  endpoint: string;
  /** Changes recorded (their events created) at or after this time. */
  since: Date;
  /** The endpoint's `events`: only these types (all when unset). */
  events?: readonly EventType[] | undefined;
}

interface Source {
  id: string;
  event_id: string;
  change_id: string;
  order_id: string;
  event_type: string;
  /** Null when event_body() makes it (migration 11): the copy has the same order and type, so the same body. */
  body: string | null;
}

// One row per change and event type (the first endpoint's copy), that the endpoint does not have yet.
function sourcesSql(schema: string, limit: string): string {
  const s = ident(schema);
  return `SELECT * FROM (
      SELECT DISTINCT ON (o.change_id, o.event_type) o.id::text AS id, o.event_id::text AS event_id, o.change_id::text AS change_id,
             o.order_id, o.event_type, o.body
        FROM ${s}.outbox o
       WHERE o.created_at >= $1 AND o.endpoint <> $2 AND ($3::text[] IS NULL OR o.event_type = ANY($3::text[]))
         AND o.id > $4::bigint
         AND NOT EXISTS (SELECT 1 FROM ${s}.outbox t WHERE t.endpoint = $2 AND t.change_id = o.change_id AND t.event_type = o.event_type)
       ORDER BY o.change_id, o.event_type, o.id) x
    ORDER BY x.id::bigint ${limit}`;
}

/** How many events a backfill would create. */
export async function countBackfill(db: Db, schema: string, scope: BackfillScope): Promise<number> {
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM (${sourcesSql(schema, '')}) b`, [
    scope.since,
    scope.endpoint,
    scope.events ?? null,
    0,
  ]);
  return Number(rows[0]!.n);
}

/**
 * Creates the events, REPLAY_BATCH at a time, each batch one statement, pending. As the service's
 * moves do, only the first of an order's new events is due, and only when the endpoint has nothing
 * of that order pending; the rest become due one after the other as those ahead are delivered.
 */
export async function backfill(db: Db, schema: string, scope: BackfillScope, onBatch: OnBatch = () => undefined): Promise<number> {
  const s = ident(schema);
  const { rows: installation } = await db.query<{ id: string }>(`SELECT id::text FROM ${s}.installation`);
  const key = installation[0]!.id;
  let created = 0;
  let after = '0';
  for (;;) {
    const { rows } = await db.query<Source>(sourcesSql(schema, `LIMIT ${REPLAY_BATCH}`), [
      scope.since,
      scope.endpoint,
      scope.events ?? null,
      after,
    ]);
    if (rows.length === 0) return created;
    const { rowCount } = await db.query(
      `WITH e AS (
          SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[]) WITH ORDINALITY AS e(event_id, change_id, order_id, event_type, body, n)),
        ahead AS (
          SELECT DISTINCT p.order_id FROM ${s}.outbox p
           WHERE p.order_id IN (SELECT order_id FROM e) AND p.endpoint = $6 AND p.status = 'pending')
      INSERT INTO ${s}.outbox (event_id, change_id, order_id, event_type, body, endpoint, next_attempt_at)
      SELECT e.event_id, e.change_id, e.order_id, e.event_type, e.body, $6,
             CASE WHEN e.n = min(e.n) OVER (PARTITION BY e.order_id) AND e.order_id NOT IN (SELECT order_id FROM ahead) THEN now() END
        FROM e ORDER BY e.n
      ON CONFLICT (event_id) DO NOTHING`,
      [
        rows.map((r) => backfillEventId(key, r.event_id, scope.endpoint)),
        rows.map((r) => r.change_id),
        rows.map((r) => r.order_id),
        rows.map((r) => r.event_type),
        rows.map((r) => r.body),
        scope.endpoint,
      ],
    );
    created += rowCount ?? 0;
    after = rows.at(-1)!.id;
    onBatch(created);
  }
}
