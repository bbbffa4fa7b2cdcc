// What operators ask of the database, for every surface (the command line, the HTTP port): each
// query reads the views of migrations/000005_operations.sql or calls its replay functions, so what
// psql shows and what the commands show are the same thing.
import type pg from 'pg';
import { LATEST_VERSION } from '../capture/migrate.ts';
import { inspectSchema } from '../capture/inspect.ts';
import {
  ALL_TRIGGERS,
  type CaptureStatus,
  type CaptureTarget,
  captureTriggerStatus,
  qualifiedOrdersTable,
  renderCapture,
} from '../capture/trigger.ts';
import { ident } from '../db.ts';

type Db = pg.ClientBase | pg.Pool;

export const EVENT_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

/** Connections of the command line and of `migrate`: not service instances. */
const TOOL_APPLICATIONS = ['order-webhooks cli', 'order-webhooks migrate'];
/** Instances seen "recently": connections opened or active within this many minutes, or open now. */
export const DELIVERED_WINDOW_MINUTES = 5;

export interface SchemaState {
  name: string;
  /** null: our schema is not installed. */
  version: number | null;
  latest: number;
  current: boolean;
}

export async function schemaState(db: Db, schema: string): Promise<SchemaState> {
  const latest = LATEST_VERSION();
  let version: number | null = null;
  const exists = await db.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${ident(schema)}.migration`]);
  if (exists.rows[0]?.present) {
    const found = await db.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${ident(schema)}.migration`);
    version = found.rows[0]?.version ?? null;
  }
  return { name: schema, version, latest, current: version === latest };
}

export type TriggerCondition = 'enabled' | 'disabled' | 'missing' | 'partly installed';

export interface TriggerState {
  table: string;
  /** Every trigger this release installs is on the orders table. */
  installed: boolean;
  /** They fire for the order app's sessions (`ALTER TABLE … DISABLE TRIGGER` turns this off). */
  enabled: boolean;
  /** Installed as this config renders it (`migrate` updates it otherwise). */
  matchesConfig: boolean;
  condition: TriggerCondition;
  /** How the triggers fire: `origin` (not in replica sessions), `always`, or `mixed`, `disabled`, `missing`. */
  mode: CaptureStatus['mode'];
  /** What orders.replicaSessions asks for. */
  expectedMode: CaptureStatus['expected'];
  /** One line each, from the table and every partition (src/capture/trigger.ts captureTriggerStatus). */
  problems: string[];
  /** Damage to our own schema done by hand (src/capture/inspect.ts). */
  damage: string[];
}

/** Whether the capture trigger is in place on the orders table and its partitions, firing, and as this config wants it. */
export async function triggerState(db: Db, target: CaptureTarget): Promise<TriggerState> {
  const table = qualifiedOrdersTable(target);
  const capture = await captureTriggerStatus(db, target);
  // The named table's own triggers (partitions are in capture.problems).
  const own = capture.triggers.filter((t) => t.table === table);
  let definition: string | undefined;
  const present = await db.query<{ present: boolean }>(
    'SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2) AS present',
    [target.schema, 'capture'],
  );
  if (present.rows[0]?.present) {
    const installed = await db.query<{ definition: string; orders_table: string }>(
      `SELECT definition, orders_table FROM ${ident(target.schema)}.capture`,
    );
    if (installed.rows[0]?.orders_table === table) definition = installed.rows[0].definition;
  }
  const installed = own.length === ALL_TRIGGERS.length;
  const enabled = installed && !capture.problems.some((p) => p.level === 'error');
  const condition: TriggerCondition = own.length === 0 ? 'missing' : !installed ? 'partly installed' : enabled ? 'enabled' : 'disabled';
  const damage = present.rows[0]?.present ? await inspectSchema(db, target.schema) : [];
  return {
    table,
    installed,
    enabled,
    matchesConfig: installed && definition === renderCapture(target),
    condition,
    mode: capture.mode,
    expectedMode: capture.expected,
    problems: capture.problems.map((p) => p.message),
    damage,
  };
}

export interface Failure {
  eventId: string;
  orderId: string;
  eventType: string;
  attempt: number;
  at: Date;
  kind: string | null;
  reason: string | null;
  httpStatus: number | null;
}

export interface Instance {
  application: string;
  client: string | null;
  connections: number;
  since: Date;
}

export interface OutboxStatus {
  counts: Record<EventStatus, number>;
  journalBacklog: number;
  oldestPendingAt: Date | null;
  /** Seconds since the oldest pending event was created (0 when none is pending). */
  lagSeconds: number;
  deliveredRecently: number;
  lastFailure: Failure | null;
  /** Running service instances: one LISTEN connection each. */
  instances: number;
  connections: Instance[];
}

/** Counts, lag and recent activity (our schema must be installed). */
export async function outboxStatus(db: Db, schema: string): Promise<OutboxStatus> {
  const s = ident(schema);
  const { rows } = await db.query<{ status: EventStatus; events: string }>(
    `SELECT status, sum(events)::text AS events FROM ${s}.summary GROUP BY status`,
  );
  const counts: Record<EventStatus, number> = { pending: 0, delivered: 0, failed: 0 };
  for (const row of rows) counts[row.status] = Number(row.events);
  const numbers = await db.query<{ backlog: string; oldest: Date | null; lag: number | null; delivered: string }>(
    `SELECT (SELECT count(*) FROM ${s}.change)::text AS backlog,
            (SELECT min(created_at) FROM ${s}.pending) AS oldest,
            (SELECT extract(epoch FROM max(age))::float8 FROM ${s}.pending) AS lag,
            (SELECT count(*) FROM ${s}.attempts
              WHERE outcome = 'delivered' AND started_at > now() - make_interval(mins => $1))::text AS delivered`,
    [DELIVERED_WINDOW_MINUTES],
  );
  const failure = await db.query<Failure>(
    `SELECT event_id AS "eventId", order_id AS "orderId", event_type AS "eventType", attempt, started_at AS at,
            error_kind AS kind, error AS reason, http_status AS "httpStatus"
       FROM ${s}.attempts WHERE outcome <> 'delivered' ORDER BY started_at DESC LIMIT 1`,
  );
  const instances = await db.query<Instance>(
    `SELECT application_name AS application, host(client_addr) AS client, count(*)::int AS connections, min(backend_start) AS since
       FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'order-webhooks%' AND application_name <> ALL($1)
      GROUP BY 1, 2 ORDER BY 1, 2`,
    [TOOL_APPLICATIONS],
  );
  const n = numbers.rows[0]!;
  return {
    counts,
    journalBacklog: Number(n.backlog),
    oldestPendingAt: n.oldest,
    lagSeconds: Math.max(0, Math.round(n.lag ?? 0)),
    deliveredRecently: Number(n.delivered),
    lastFailure: failure.rows[0] ?? null,
    instances: instances.rows.filter((row) => row.application === 'order-webhooks listen').reduce((sum, row) => sum + row.connections, 0),
    connections: instances.rows,
  };
}

export interface EventRow {
  eventId: string;
  orderId: string;
  eventType: string;
  status: EventStatus;
  attempts: number;
  createdAt: Date;
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  replayedAt: Date | null;
  lastStatus: number | null;
  lastErrorKind: string | null;
  lastError: string | null;
  responseMs: number | null;
  inFlight: boolean;
  unrecordedAttempts: number;
}

const EVENT_COLUMNS = `event_id AS "eventId", order_id AS "orderId", event_type AS "eventType", status, attempts,
  created_at AS "createdAt", next_attempt_at AS "nextAttemptAt", delivered_at AS "deliveredAt", replayed_at AS "replayedAt",
  last_status AS "lastStatus", last_error_kind AS "lastErrorKind", last_error AS "lastError", response_ms AS "responseMs",
  in_flight AS "inFlight", unrecorded_attempts AS "unrecordedAttempts"`;

export interface ListFilter {
  status?: EventStatus;
  orderId?: string;
  eventType?: string;
  since?: Date;
  until?: Date;
  limit: number;
  /** Rows to skip (paging). */
  offset?: number;
}

/** Events matching the filter: one order's in their original order, otherwise the newest first. */
export async function listEvents(db: Db, schema: string, filter: ListFilter): Promise<EventRow[]> {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (condition: string, value: unknown) => {
    values.push(value);
    where.push(condition.replace('?', `$${values.length}`));
  };
  if (filter.status) add('status = ?', filter.status);
  if (filter.orderId) add('order_id = ?', filter.orderId);
  if (filter.eventType) add('event_type = ?', filter.eventType);
  if (filter.since) add('created_at >= ?', filter.since);
  if (filter.until) add('created_at < ?', filter.until);
  values.push(filter.limit);
  const { rows } = await db.query<EventRow>(
    `SELECT ${EVENT_COLUMNS} FROM ${ident(schema)}.events
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY outbox_id ${filter.orderId ? 'ASC' : 'DESC'} LIMIT $${values.length} OFFSET ${Math.max(0, Math.trunc(filter.offset ?? 0))}`,
    values,
  );
  return rows;
}

export interface AttemptRow {
  attempt: number;
  /** delivered, a failure kind, `in flight`, or `no result` (its instance stopped or died before recording it). */
  outcome: string;
  startedAt: Date | null;
  durationMs: number | null;
  httpStatus: number | null;
  reason: string | null;
}

export interface EventDetail extends EventRow {
  body: string;
  attemptRows: AttemptRow[];
}

/**
 * One event with every attempt. An attempt number with no row was made (the claim counted it) but
 * left no result: in flight while its lease lasts, else its instance stopped or died before recording.
 */
export async function showEvent(db: Db, schema: string, eventId: string): Promise<EventDetail | undefined> {
  const s = ident(schema);
  const { rows } = await db.query<EventRow & { body: string }>(`SELECT ${EVENT_COLUMNS}, body FROM ${s}.events WHERE event_id = $1`, [
    eventId,
  ]);
  const event = rows[0];
  if (!event) return undefined;
  const attempts = await db.query<AttemptRow>(
    `SELECT attempt, outcome, started_at AS "startedAt", duration_ms AS "durationMs", http_status AS "httpStatus", error AS reason
       FROM ${s}.attempts WHERE event_id = $1 ORDER BY attempt, started_at`,
    [eventId],
  );
  const attemptRows: AttemptRow[] = [];
  for (let n = 1; n <= Math.max(event.attempts, ...attempts.rows.map((a) => a.attempt)); n++) {
    const recorded = attempts.rows.filter((a) => a.attempt === n);
    if (recorded.length > 0) attemptRows.push(...recorded);
    else {
      const inFlight = event.inFlight && n === event.attempts;
      attemptRows.push({
        attempt: n,
        outcome: inFlight ? 'in flight' : 'no result',
        startedAt: null,
        durationMs: null,
        httpStatus: null,
        reason: inFlight ? 'being sent now' : 'made, but its instance stopped or died before recording the result',
      });
    }
  }
  return { ...event, attemptRows };
}

/** Replays one event by its id; 0 when it is pending already or unknown. */
export async function replayEvent(db: Db, schema: string, eventId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ${ident(schema)}.replay_event($1) AS n`, [eventId]);
  return rows[0]!.n;
}

/** Replays the events of one order that are not pending. */
export async function replayOrder(db: Db, schema: string, orderId: string): Promise<number> {
  const { rows } = await db.query<{ n: number }>(`SELECT ${ident(schema)}.replay_order($1) AS n`, [orderId]);
  return rows[0]!.n;
}

export type ReplayScope =
  | { kind: 'event'; eventId: string }
  | { kind: 'order'; orderId: string }
  | { kind: 'failed'; since?: Date }
  | { kind: 'range'; from: Date; to: Date };

/** How many events a replay would send back to pending now (the replay functions skip pending ones). */
export async function countReplayable(db: Db, schema: string, scope: ReplayScope): Promise<number> {
  const [condition, values]: [string, unknown[]] =
    scope.kind === 'event'
      ? ["event_id = $1::uuid AND status <> 'pending'", [scope.eventId]]
      : scope.kind === 'order'
        ? ["order_id = $1 AND status <> 'pending'", [scope.orderId]]
        : scope.kind === 'failed'
          ? ["status = 'failed' AND created_at >= $1", [scope.since ?? '-infinity']]
          : ["created_at >= $1 AND created_at < $2 AND status <> 'pending'", [scope.from, scope.to]];
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${ident(schema)}.outbox WHERE ${condition}`, values);
  return Number(rows[0]!.n);
}

/** Runs one replay of any scope (the same functions as `order-webhooks replay`). */
export function replay(db: Db, schema: string, scope: ReplayScope): Promise<number> {
  if (scope.kind === 'event') return replayEvent(db, schema, scope.eventId);
  if (scope.kind === 'order') return replayOrder(db, schema, scope.orderId);
  if (scope.kind === 'failed') return replayFailed(db, schema, scope.since);
  return replayRange(db, schema, scope.from, scope.to);
}

export interface MinuteCounts {
  minute: Date;
  delivered: number;
  failed: number;
}

/** Delivered and failed attempts per minute over the last `minutes` minutes (minutes without any are left out). */
export async function attemptsPerMinute(db: Db, schema: string, minutes = 60): Promise<MinuteCounts[]> {
  const { rows } = await db.query<{ minute: Date; delivered: number; failed: number }>(
    `SELECT date_trunc('minute', started_at) AS minute,
            count(*) FILTER (WHERE outcome = 'delivered')::int AS delivered,
            count(*) FILTER (WHERE outcome <> 'delivered')::int AS failed
       FROM ${ident(schema)}.attempts
      WHERE started_at > date_trunc('minute', now()) - make_interval(mins => $1)
      GROUP BY 1 ORDER BY 1`,
    [minutes - 1],
  );
  return rows;
}

export interface Progress {
  /** Called once with the size of the work (outbox ids to go through), then after each batch. */
  start?(total: number): void;
  step?(done: number, replayed: number): void;
}

/** Outbox ids per batch: each batch is one short transaction. */
export const REPLAY_BATCH = 1000;

/** Runs a windowed replay function over the outbox, REPLAY_BATCH ids at a time (events added meanwhile are not replayed). */
async function replayInBatches(db: Db, schema: string, call: string, args: unknown[], progress: Progress): Promise<number> {
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
      `SELECT ${ident(schema)}.${call}(${placeholders}, $${args.length + 1}::bigint, $${args.length + 2}::bigint) AS n`,
      [...args, from.toString(), to.toString()],
    );
    replayed += result.rows[0]!.n;
    progress.step?.(Number(to - first + 1n), replayed);
  }
  return replayed;
}

/** Replays every failed event created since `since` (all of them without). */
export function replayFailed(db: Db, schema: string, since: Date | undefined, progress: Progress = {}): Promise<number> {
  return replayInBatches(db, schema, 'replay_failed', [since ?? '-infinity'], progress);
}

/** Replays every event created in [from, to), whatever its status. */
export function replayRange(db: Db, schema: string, from: Date, to: Date, progress: Progress = {}): Promise<number> {
  return replayInBatches(db, schema, 'replay_range', [from, to], progress);
}

/** How many events `purge` would delete: those of this status created before `before`. */
export async function countPurgeable(db: Db, schema: string, status: 'delivered' | 'failed', before: Date): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM ${ident(schema)}.outbox WHERE status = $1 AND created_at < $2`,
    [status, before],
  );
  return Number(rows[0]!.n);
}

/** Deletes events (and their attempts) of this status created before `before`, in short batches. */
export async function purge(
  db: Db,
  schema: string,
  status: 'delivered' | 'failed',
  before: Date,
  onBatch: (deleted: number) => void = () => undefined,
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM ${ident(schema)}.outbox WHERE id IN (
         SELECT id FROM ${ident(schema)}.outbox WHERE status = $1 AND created_at < $2 ORDER BY id LIMIT $3)`,
      [status, before, REPLAY_BATCH],
    );
    deleted += rowCount ?? 0;
    onBatch(deleted);
    if ((rowCount ?? 0) < REPLAY_BATCH) return deleted;
  }
}
