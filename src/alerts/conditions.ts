// What alerts are about, read from the database: each kind's condition now, per endpoint, with one
// line for a person. Every instance reads them; the alert table decides who sends (alerter.ts).
import type pg from 'pg';
import { captureTriggerStatus } from '../capture/state.ts';
import type { CaptureTarget } from '../capture/render.ts';
import { ident } from '../db.ts';
import { readEndpointStates } from '../outbox/endpointState.ts';
import { readCounts } from '../outbox/status.ts';

export const ALERT_KINDS = ['endpoint_down', 'events_failed', 'capture_broken', 'lag'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export interface Condition {
  kind: AlertKind;
  /** The endpoint it is about, or '' (capture_broken). */
  endpoint: string;
  firing: boolean;
  /** One line for a person: what is wrong (or that it is over) and what it does. */
  text: string;
}

/** Events given up within this long count towards `events_failed`. */
export const FAILED_WINDOW_MS = 60_000;

function age(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 360) / 10} h`;
}

export async function readConditions(
  db: pg.Pool,
  schema: string,
  target: CaptureTarget,
  endpoints: readonly string[],
  lagOverMs: number,
  failedWindowMs = FAILED_WINDOW_MS,
): Promise<Condition[]> {
  // One after another: the pool is the dispatcher's too, and these are not in a hurry.
  const states = await readEndpointStates(db, schema, endpoints);
  const capture = await captureTriggerStatus(db, target);
  // The attempt that gave an event up is its last; found by the started_at index (migration 8).
  const failed = await db.query<{ endpoint: string; events: number; reason: string | null }>(
    `SELECT o.endpoint, count(*)::int AS events, max(a.error) AS reason
         FROM ${ident(schema)}.outbox_attempt a JOIN ${ident(schema)}.outbox o ON o.id = a.outbox_id
        WHERE a.started_at > now() - $1 * interval '1 ms' AND o.status = 'failed' AND a.attempt = o.attempts
        GROUP BY o.endpoint`,
    [failedWindowMs],
  );
  const conditions: Condition[] = [];
  for (const e of states) {
    if (!endpoints.includes(e.endpoint)) continue;
    conditions.push({
      kind: 'endpoint_down',
      endpoint: e.endpoint,
      firing: e.status === 'down',
      text:
        e.status === 'down'
          ? `order-webhooks: endpoint ${e.endpoint} is down since ${e.openedAt?.toISOString()} (circuit breaker open after ${e.failures} failures in a row); its events wait, one probe per interval`
          : `order-webhooks: endpoint ${e.endpoint} is ${e.status === 'paused' ? 'paused' : 'up'} again`,
    });
  }
  // Per endpoint, each configured one: its own alert starts and ends on its own.
  const named = (endpoint: string) => (endpoints.length > 1 ? ` to endpoint ${endpoint}` : '');
  for (const endpoint of endpoints) {
    const row = failed.rows.find((r) => r.endpoint === endpoint);
    const events = row?.events ?? 0;
    conditions.push({
      kind: 'events_failed',
      endpoint,
      firing: events > 0,
      text:
        events > 0
          ? `order-webhooks: ${events} event(s)${named(endpoint)} given up in the last minute (${row?.reason ?? 'no reason recorded'}); see \`order-webhooks outbox list --status failed\``
          : `order-webhooks: no event${named(endpoint)} given up in the last minute`,
    });
  }
  const broken = capture.problems.filter((p) => p.level === 'error');
  conditions.push({
    kind: 'capture_broken',
    endpoint: '',
    firing: broken.length > 0,
    text: broken.length > 0 ? `order-webhooks: ${broken[0]!.message}` : `order-webhooks: capture triggers on ${capture.table} work again`,
  });
  for (const endpoint of endpoints) {
    // An endpoint's lag: its oldest pending event, or a change not yet made into events (every endpoint's).
    const backlog = await readCounts(db, schema, endpoint);
    const lagging = backlog.oldestPendingSeconds * 1000 > lagOverMs;
    conditions.push({
      kind: 'lag',
      endpoint,
      firing: lagging,
      text: lagging
        ? `order-webhooks: the oldest undelivered change${named(endpoint)} is ${age(backlog.oldestPendingSeconds)} old (over alerts.lagOver, ${age(lagOverMs / 1000)})`
        : `order-webhooks: lag${named(endpoint)} back under ${age(lagOverMs / 1000)}`,
    });
  }
  return conditions;
}
