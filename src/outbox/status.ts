// What waits, what failed and what was sent lately: the counts every operator surface shows. Each
// reads the views of migrations/000005_operations.sql, so psql and the commands agree.
import { type Db, ident } from '../db.ts';

export const EVENT_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type EventStatus = (typeof EVENT_STATUSES)[number];

/** Connections of the command line and of `migrate`: not service instances. */
const TOOL_APPLICATIONS = ['order-webhooks cli', 'order-webhooks migrate'];
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
