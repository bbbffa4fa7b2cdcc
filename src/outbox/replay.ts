// Replays: events sent back to pending, through the SQL functions of migrations/000005_operations.sql
// that a DBA calls from psql too.
import { type Db, ident } from '../db.ts';

/** Replays one event by its id; 0 when it is pending already or unknown. */
export async function replayEvent(db: Db, schema: string, eventId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ${ident(schema)}.replay_event($1) AS n`, [eventId]);
  return rows[0]!.n;
}

/** Replays the events of one order that are not pending (to one endpoint, or all). */
export async function replayOrder(db: Db, schema: string, orderId: string, endpoint?: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ${ident(schema)}.replay_order($1, $2) AS n`, [orderId, endpoint ?? null]);
  return rows[0]!.n;
}

export type ReplayScope = (
  | { kind: 'event'; eventId: string }
  | { kind: 'order'; orderId: string }
  | { kind: 'failed'; since?: Date }
  | { kind: 'range'; from: Date; to: Date }
) & {
  /** Only this endpoint's events (all endpoints' without). */
  endpoint?: string;
};

/** How many events a replay would send back to pending now (the replay functions skip pending ones). */
export async function countReplayable(db: Db, schema: string, scope: ReplayScope): Promise<number> {
  const [where, params]: [string, unknown[]] =
    scope.kind === 'event'
      ? ["event_id = $1::uuid AND status <> 'pending'", [scope.eventId]]
      : scope.kind === 'order'
        ? ["order_id = $1 AND status <> 'pending'", [scope.orderId]]
        : scope.kind === 'failed'
          ? ["status = 'failed' AND created_at >= $1", [scope.since ?? '-infinity']]
          : ["created_at >= $1 AND created_at < $2 AND status <> 'pending'", [scope.from, scope.to]];
  const [condition, values] =
    scope.endpoint === undefined ? [where, params] : [`${where} AND endpoint = $${params.length + 1}`, [...params, scope.endpoint]];
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${ident(schema)}.outbox WHERE ${condition}`, values);
  return Number(rows[0]!.n);
}

/** Runs one replay of any scope (the same functions as `order-webhooks replay`). */
export function replay(db: Db, schema: string, scope: ReplayScope): Promise<number> {
  if (scope.kind === 'event') return replayEvent(db, schema, scope.eventId);
  if (scope.kind === 'order') return replayOrder(db, schema, scope.orderId, scope.endpoint);
  if (scope.kind === 'failed') return replayFailed(db, schema, scope.since, {}, scope.endpoint);
  return replayRange(db, schema, scope.from, scope.to, {}, scope.endpoint);
}

/** Told the running total after each batch of a batched change (purge, backfill). */
export type OnBatch = (done: number) => void;

export interface Progress {
  /** Called once with the size of the work (outbox ids to go through), then after each batch. */
  start?(total: number): void;
  step?(done: number, replayed: number): void;
}

/** Outbox ids per batch: each batch is one short transaction. */
export const REPLAY_BATCH = 1000;

/** Runs a windowed replay function over the outbox, REPLAY_BATCH ids at a time (events added meanwhile are not replayed). */
async function replayInBatches(
  db: Db,
  schema: string,
  call: string,
  args: unknown[],
  progress: Progress,
  endpoint: string | undefined,
): Promise<number> {
  const { rows } = await db.query<{ first: string | null; last: string | null }>(
    `SELECT min(id)::text AS first, max(id)::text AS last FROM ${ident(schema)}.outbox`,
  );
  if (rows[0]?.first == null || rows[0].last == null) return 0;
  const first = BigInt(rows[0].first);
  const last = BigInt(rows[0].last);
  const total = Number(last - first + 1n);
  progress.start?.(total);
  let replayed = 0;
  for (let from = first; from <= last; from += BigInt(REPLAY_BATCH)) {
    const to = from + BigInt(REPLAY_BATCH) - 1n < last ? from + BigInt(REPLAY_BATCH) - 1n : last;
    const placeholders = args.map((_, i) => `$${i + 1}`).join(', ');
    const result = await db.query<{ n: number }>(
      `SELECT ${ident(schema)}.${call}(${placeholders}, $${args.length + 1}::bigint, $${args.length + 2}::bigint, $${args.length + 3}::text) AS n`,
      [...args, from.toString(), to.toString(), endpoint ?? null],
    );
    replayed += result.rows[0]!.n;
    progress.step?.(Number(to - first + 1n), replayed);
  }
  return replayed;
}

/** Replays every failed event created since `since` (all of them without), of one endpoint or all. */
export function replayFailed(db: Db, schema: string, since: Date | undefined, progress: Progress = {}, endpoint?: string): Promise<number> {
  return replayInBatches(db, schema, 'replay_failed', [since ?? '-infinity'], progress, endpoint);
}

/** Replays every event created in [from, to), whatever its status, of one endpoint or all. */
export function replayRange(db: Db, schema: string, from: Date, to: Date, progress: Progress = {}, endpoint?: string): Promise<number> {
  return replayInBatches(db, schema, 'replay_range', [from, to], progress, endpoint);
}
