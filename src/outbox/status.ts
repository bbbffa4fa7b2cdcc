// What waits, what failed and what was sent lately: the counts every operator surface shows.
// `readCounts` is the one reading of the backlog behind /metrics, `status` and the web page; the
// rest reads the views of migrations/000005_operations.sql, so psql and the commands agree.
import { type Config, endpointsOf } from '../config/config.ts';
import { type Db, ident } from '../db.ts';
import { endpointUrl, redactUrl } from '../delivery/endpoint.ts';
import { deliveredCounts } from './history.ts';

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
  /** Pending and failed events per endpoint (those with none are left out). */
  endpoints: { endpoint: string; pending: number; failed: number }[];
}

/**
 * The backlog, in one statement. Each count is found in an index (the journal's primary key, the
 * outbox's partial indexes of pending and of failed rows), never in the delivered rows, which
 * outnumber the rest: /metrics runs it at every scrape. Pending is `status = 'pending'`, the
 * predicate of outbox_order_pending, so it counts the events waiting behind their order's head too
 * (they have no next_attempt_at, migration 7).
 */
export async function readCounts(db: Db, schema: string, endpoint?: string): Promise<Counts> {
  const s = ident(schema);
  // $1: one endpoint's events, or null for all; the journal's changes are every endpoint's.
  const of = '($1::text IS NULL OR endpoint = $1)';
  const { rows } = await db.query<{ journal: string; pending: string; failed: string; oldest: Date | null; age: number | null }>(
    `SELECT j.journal::text AS journal, p.pending::text AS pending, f.failed::text AS failed,
            least(p.oldest, j.oldest) AS oldest, extract(epoch FROM now() - least(p.oldest, j.oldest))::float8 AS age
       FROM (SELECT count(*) AS pending, min(created_at) AS oldest FROM ${s}.outbox WHERE status = 'pending' AND ${of}) p,
            (SELECT count(*) AS failed FROM ${s}.outbox WHERE status = 'failed' AND ${of}) f,
            (SELECT count(*) AS journal, (SELECT changed_at FROM ${s}.change ORDER BY id LIMIT 1) AS oldest FROM ${s}.change) j`,
    [endpoint ?? null],
  );
  const row = rows[0]!;
  const per = await perEndpoint(db, schema, endpoint);
  return {
    journal: Number(row.journal),
    pending: Number(row.pending),
    failed: Number(row.failed),
    oldestPendingAt: row.oldest,
    oldestPendingSeconds: Math.max(0, Math.round(row.age ?? 0)),
    endpoints: per.map(({ endpoint, pending, failed }) => ({ endpoint, pending, failed })),
  };
}

/** Pending and failed events per endpoint, and each one's oldest pending (endpoints with none are left out). */
async function perEndpoint(
  db: Db,
  schema: string,
  endpoint?: string,
): Promise<{ endpoint: string; pending: number; failed: number; oldest: Date | null; ageSeconds: number | null }[]> {
  const s = ident(schema);
  const of = '($1::text IS NULL OR endpoint = $1)';
  // One branch per status, each the predicate of a partial index (outbox_order_pending,
  // outbox_failed): `status IN (...)` matches neither, and would read the delivered rows too.
  const { rows } = await db.query<{ endpoint: string; pending: string; failed: string; oldest: Date | null; age: number | null }>(
    `SELECT endpoint, sum(pending)::text AS pending, sum(failed)::text AS failed, min(oldest) AS oldest,
            extract(epoch FROM now() - min(oldest))::float8 AS age
       FROM (SELECT endpoint, count(*) AS pending, 0 AS failed, min(created_at) AS oldest
               FROM ${s}.outbox WHERE status = 'pending' AND ${of} GROUP BY endpoint
             UNION ALL
             SELECT endpoint, 0, count(*), NULL FROM ${s}.outbox WHERE status = 'failed' AND ${of} GROUP BY endpoint) c
      GROUP BY endpoint ORDER BY endpoint`,
    [endpoint ?? null],
  );
  return rows.map((r) => ({
    endpoint: r.endpoint,
    pending: Number(r.pending),
    failed: Number(r.failed),
    oldest: r.oldest,
    ageSeconds: r.age,
  }));
}

export interface OutboxStatus {
  counts: Record<EventStatus, number>;
  /** Whether `counts.delivered` is PostgreSQL's estimate rather than a count (history.ts). */
  deliveredEstimated: boolean;
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

/** Counts, lag and recent activity, of one endpoint or all (our schema must be installed). */
export async function outboxStatus(db: Db, schema: string, endpoint?: string): Promise<OutboxStatus> {
  const s = ident(schema);
  const backlog = await readCounts(db, schema, endpoint);
  const delivered = await deliveredCounts(db, schema, [], endpoint);
  // The attempts view: an event delivered at its first try is its outbox row (migration 11), found by
  // outbox_delivered_at; the rows of retried events by outbox_attempt_started.
  const numbers = await db.query<{ recently: string }>(
    `SELECT count(*)::text AS recently FROM ${s}.attempts
      WHERE outcome = 'delivered' AND started_at > now() - make_interval(mins => $1) AND ($2::text IS NULL OR endpoint = $2)`,
    [DELIVERED_WINDOW_MINUTES, endpoint ?? null],
  );
  // Failed attempts only, newest first, in their own partial index (migration 12): a failed attempt
  // always has its row, and the attempts view's `outcome` would walk every delivery back to the last failure.
  const failure = await db.query<Failure>(
    `SELECT o.event_id AS "eventId", o.order_id AS "orderId", o.event_type AS "eventType", a.attempt, a.started_at AS at,
            a.error_kind AS kind, a.error AS reason, a.http_status AS "httpStatus"
       FROM ${s}.outbox_attempt a JOIN ${s}.outbox o ON o.id = a.outbox_id
      WHERE a.error IS NOT NULL AND ($1::text IS NULL OR o.endpoint = $1) ORDER BY a.started_at DESC LIMIT 1`,
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
    counts: { pending: backlog.pending, delivered: delivered.total, failed: backlog.failed },
    deliveredEstimated: delivered.estimated,
    journalBacklog: backlog.journal,
    oldestPendingAt: backlog.oldestPendingAt,
    lagSeconds: backlog.oldestPendingSeconds,
    deliveredRecently: Number(n.recently),
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
  /** Whether `delivered` is PostgreSQL's estimate rather than a count (history.ts). */
  deliveredEstimated: boolean;
  failed: number;
  /** Seconds since its oldest pending event was created (0 when none is pending). */
  lagSeconds: number;
  /** When it last answered 2xx (null: never, or not within the attempts kept). */
  lastSuccessAt: Date | null;
}

/**
 * When an endpoint last answered 2xx: its newest delivered event (delivered_at is when the attempt
 * that delivered it started) or its newest 2xx attempt row (of an event replayed since). Each is
 * the newest end of an index, outbox_delivered_at and outbox_attempt_started, read backwards until
 * the endpoint's first. The `attempts` view would give the same, but an ORDER BY … LIMIT over its
 * union of two parts is planned as a sort of every attempt.
 */
export function lastSuccessSql(s: string): string {
  return `SELECT greatest(
      (SELECT o.delivered_at FROM ${s}.outbox o WHERE o.status = 'delivered' AND o.endpoint = $1 ORDER BY o.delivered_at DESC LIMIT 1),
      (SELECT a.started_at FROM ${s}.outbox_attempt a JOIN ${s}.outbox o ON o.id = a.outbox_id
        WHERE o.endpoint = $1 AND a.error IS NULL ORDER BY a.started_at DESC LIMIT 1)) AS at`;
}

/**
 * Every endpoint that has events in the outbox (and each of `configured`), with its counts, lag and
 * last success. Pending and failed are counted exactly; delivered as history.ts says (exact up to
 * EXACT_UP_TO in all, else estimated).
 */
export async function endpointCounts(db: Db, schema: string, configured: readonly string[] = []): Promise<EndpointCounts[]> {
  const s = ident(schema);
  const waiting = await perEndpoint(db, schema);
  const delivered = await deliveredCounts(db, schema, [...configured, ...waiting.map((e) => e.endpoint)]);
  const names = [...new Set([...waiting.map((e) => e.endpoint), ...delivered.endpoints.keys()])].sort();
  const rows = names.map((endpoint) => {
    const w = waiting.find((e) => e.endpoint === endpoint);
    return {
      endpoint,
      pending: w?.pending ?? 0,
      failed: w?.failed ?? 0,
      delivered: delivered.endpoints.get(endpoint) ?? 0,
      lag: w?.ageSeconds ?? null,
    };
  });
  const out: EndpointCounts[] = [];
  for (const row of rows) {
    const last = await db.query<{ at: Date | null }>(lastSuccessSql(s), [row.endpoint]);
    out.push({
      endpoint: row.endpoint,
      pending: row.pending,
      delivered: row.delivered,
      deliveredEstimated: delivered.estimated,
      failed: row.failed,
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
    deliveredEstimated: false,
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

export interface MinuteCounts {
  minute: Date;
  delivered: number;
  failed: number;
}

/** Delivered and failed attempts per minute over the last `minutes` minutes (minutes without any are left out). */
export async function attemptsPerMinute(db: Db, schema: string, minutes = 60): Promise<MinuteCounts[]> {
  // The attempts view: first-try deliveries from the outbox's delivered_at index, the rest from the
  // attempts' started_at index.
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
