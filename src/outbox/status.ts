// What waits, what failed and what was sent lately: the counts every operator surface shows.
// `readCounts` is the one reading of the backlog behind /metrics, `status` and the web page; the
// rest reads the views of migrations/000005_operations.sql, so psql and the commands agree.
import { type Db, ident } from '../db.ts';

export const EVENT_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

/** Connections of the command line, `migrate` and the pooler probe: not service instances. */
const TOOL_APPLICATIONS = ['order-webhooks cli', 'order-webhooks migrate', 'order-webhooks check'];
/** Instances seen "recently": connections opened or active within this many minutes, or open now. */
export const DELIVERED_WINDOW_MINUTES = 5;

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

/** What waits and what failed. */
export interface Counts {
  /** Changes in the journal not yet turned into events. */
  journal: number;
  /** Outbox events with status pending: due, retrying, in flight, or waiting behind their order's head. */
  pending: number;
  /** Outbox events given up on (status failed), until replayed or purged. */
  failed: number;
  /** When the oldest change or event not yet delivered was made (null when none). */
  oldestPendingAt: Date | null;
  /** Its age in seconds (0 when none): the delivery lag now. */
  oldestPendingSeconds: number;
}

/**
 * The backlog, in one statement. Each count is found in an index (the journal's primary key, the
 * outbox's partial indexes of pending and of failed rows), never in the delivered rows, which
 * outnumber the rest: /metrics runs it at every scrape. Pending is `status = 'pending'`, the
 * predicate of outbox_order_pending, so it counts the events waiting behind their order's head too
 * (they have no next_attempt_at, migration 7).
 */
export async function readCounts(db: Db, schema: string): Promise<Counts> {
  const s = ident(schema);
  const { rows } = await db.query<{ journal: string; pending: string; failed: string; oldest: Date | null; age: number | null }>(
    `SELECT j.journal::text AS journal, p.pending::text AS pending, f.failed::text AS failed,
            least(p.oldest, j.oldest) AS oldest, extract(epoch FROM now() - least(p.oldest, j.oldest))::float8 AS age
       FROM (SELECT count(*) AS pending, min(created_at) AS oldest FROM ${s}.outbox WHERE status = 'pending') p,
            (SELECT count(*) AS failed FROM ${s}.outbox WHERE status = 'failed') f,
            (SELECT count(*) AS journal, (SELECT changed_at FROM ${s}.change ORDER BY id LIMIT 1) AS oldest FROM ${s}.change) j`,
  );
  const row = rows[0]!;
  return {
    journal: Number(row.journal),
    pending: Number(row.pending),
    failed: Number(row.failed),
    oldestPendingAt: row.oldest,
    oldestPendingSeconds: Math.max(0, Math.round(row.age ?? 0)),
  };
}

export interface OutboxStatus {
  counts: Record<EventStatus, number>;
  journalBacklog: number;
  /** When the oldest change or event not yet delivered was made (readCounts). */
  oldestPendingAt: Date | null;
  /** Its age in seconds (0 when nothing waits). */
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
  const backlog = await readCounts(db, schema);
  const numbers = await db.query<{ delivered: string; recently: string }>(
    `SELECT (SELECT count(*) FROM ${s}.outbox WHERE status = 'delivered')::text AS delivered,
            (SELECT count(*) FROM ${s}.attempts
              WHERE outcome = 'delivered' AND started_at > now() - make_interval(mins => $1))::text AS recently`,
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
    counts: { pending: backlog.pending, delivered: Number(n.delivered), failed: backlog.failed },
    journalBacklog: backlog.journal,
    oldestPendingAt: backlog.oldestPendingAt,
    lagSeconds: backlog.oldestPendingSeconds,
    deliveredRecently: Number(n.recently),
    lastFailure: failure.rows[0] ?? null,
    instances: instances.rows.filter((row) => row.application === 'order-webhooks listen').reduce((sum, row) => sum + row.connections, 0),
    connections: instances.rows,
  };
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
