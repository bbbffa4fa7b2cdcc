// What waits, what failed and what was sent lately: the counts every operator surface shows. Each
// reads the views of migrations/000005_operations.sql, so psql and the commands agree.
import { type Config, endpointsOf } from '../config/config.ts';
import { type Db, ident } from '../db.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';

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

/** Counts, lag and recent activity, of one endpoint or all (our schema must be installed). */
export async function outboxStatus(db: Db, schema: string, endpoint?: string): Promise<OutboxStatus> {
  const s = ident(schema);
  // $1 is the endpoint, or null for all of them.
  const of = '($1::text IS NULL OR endpoint = $1)';
  const { rows } = await db.query<{ status: EventStatus; events: string }>(
    `SELECT status, sum(events)::text AS events FROM ${s}.summary WHERE ${of} GROUP BY status`,
    [endpoint ?? null],
  );
  const counts: Record<EventStatus, number> = { pending: 0, delivered: 0, failed: 0 };
  for (const row of rows) counts[row.status] = Number(row.events);
  const numbers = await db.query<{ backlog: string; oldest: Date | null; lag: number | null; delivered: string }>(
    `SELECT (SELECT count(*) FROM ${s}.change)::text AS backlog,
            (SELECT min(created_at) FROM ${s}.pending WHERE ${of}) AS oldest,
            (SELECT extract(epoch FROM max(age))::float8 FROM ${s}.pending WHERE ${of}) AS lag,
            (SELECT count(*) FROM ${s}.attempts
              WHERE outcome = 'delivered' AND started_at > now() - make_interval(mins => $2) AND ${of})::text AS delivered`,
    [endpoint ?? null, DELIVERED_WINDOW_MINUTES],
  );
  const failure = await db.query<Failure>(
    `SELECT event_id AS "eventId", order_id AS "orderId", event_type AS "eventType", attempt, started_at AS at,
            error_kind AS kind, error AS reason, http_status AS "httpStatus"
       FROM ${s}.attempts WHERE outcome <> 'delivered' AND ${of} ORDER BY started_at DESC LIMIT 1`,
    [endpoint ?? null],
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

/** One endpoint's events as the outbox holds them: what `status` shows per endpoint. */
export interface EndpointCounts {
  endpoint: string;
  pending: number;
  delivered: number;
  failed: number;
  /** Seconds since its oldest pending event was created (0 when none is pending). */
  lagSeconds: number;
  /** When it last answered 2xx (null: never, or not within the attempts kept). */
  lastSuccessAt: Date | null;
}

/** Every endpoint that has events in the outbox, with its counts, lag and last success (from the views). */
export async function endpointCounts(db: Db, schema: string): Promise<EndpointCounts[]> {
  const s = ident(schema);
  const { rows } = await db.query<{ endpoint: string; pending: string; delivered: string; failed: string; lag: number | null }>(
    `SELECT endpoint,
            coalesce(sum(events) FILTER (WHERE status = 'pending'), 0)::text AS pending,
            coalesce(sum(events) FILTER (WHERE status = 'delivered'), 0)::text AS delivered,
            coalesce(sum(events) FILTER (WHERE status = 'failed'), 0)::text AS failed,
            extract(epoch FROM now() - min(oldest) FILTER (WHERE status = 'pending'))::float8 AS lag
       FROM ${s}.summary GROUP BY endpoint ORDER BY endpoint`,
  );
  const out: EndpointCounts[] = [];
  for (const row of rows) {
    // The newest attempts first, by the started_at index: stops at the endpoint's latest 2xx.
    const last = await db.query<{ at: Date }>(
      `SELECT started_at AS at FROM ${s}.attempts WHERE endpoint = $1 AND outcome = 'delivered' ORDER BY started_at DESC LIMIT 1`,
      [row.endpoint],
    );
    out.push({
      endpoint: row.endpoint,
      pending: Number(row.pending),
      delivered: Number(row.delivered),
      failed: Number(row.failed),
      lagSeconds: Math.max(0, Math.round(row.lag ?? 0)),
      lastSuccessAt: last.rows[0]?.at ?? null,
    });
  }
  return out;
}

/** An endpoint as every surface shows it: the config says whether it is enabled, the outbox the rest. */
export interface EndpointState extends EndpointCounts {
  /** `removed`: it has events in the outbox but is no longer in the config; they are not sent. */
  state: 'enabled' | 'disabled' | 'removed';
  /** Its URL without credentials or query values (null when removed). */
  url: string | null;
}

/** The endpoints of a config, as `endpointStates` takes them. */
export function configuredEndpoints(config: Pick<Config, 'webHook' | 'webHooks'>): { name: string; enabled: boolean; url: string }[] {
  return endpointsOf(config).map((e) => ({
    name: e.name,
    enabled: e.hook.enabled,
    url: redactUrl(endpointUrl(e.hook.endpoint!, e.hook.key)),
  }));
}

/** The configured endpoints (in config order) and then those removed from the config that still have events. */
export function endpointStates(
  configured: readonly { name: string; enabled: boolean; url: string }[],
  counts: readonly EndpointCounts[],
): EndpointState[] {
  const byName = new Map(counts.map((c) => [c.endpoint, c]));
  const none = (endpoint: string): EndpointCounts => ({
    endpoint,
    pending: 0,
    delivered: 0,
    failed: 0,
    lagSeconds: 0,
    lastSuccessAt: null,
  });
  const states: EndpointState[] = configured.map((e) => ({
    ...(byName.get(e.name) ?? none(e.name)),
    state: e.enabled ? 'enabled' : 'disabled',
    url: e.url,
  }));
  const known = new Set(configured.map((e) => e.name));
  for (const c of counts) if (!known.has(c.endpoint)) states.push({ ...c, state: 'removed', url: null });
  return states;
}

/** The line `status` (and the page) give an endpoint removed from the config whose events still wait. */
export function removedEndpointNote(state: EndpointState): string | undefined {
  if (state.state !== 'removed' || state.pending === 0) return undefined;
  return `endpoint ${state.endpoint} is not in the config: its ${state.pending} pending event(s) are not sent; \`order-webhooks purge --endpoint ${state.endpoint}\` deletes them`;
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
