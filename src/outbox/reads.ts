// The outbox's events and attempts as the operator reads them: a filtered list, one event in full.
import { type Db, ident } from '../db.ts';
import type { EventStatus } from './status.ts';

export interface EventRow {
  eventId: string;
  /** The receiver it goes to (`default`: webHook). */
  endpoint: string;
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

const EVENT_COLUMNS = `event_id AS "eventId", endpoint, order_id AS "orderId", event_type AS "eventType", status, attempts,
  created_at AS "createdAt", next_attempt_at AS "nextAttemptAt", delivered_at AS "deliveredAt", replayed_at AS "replayedAt",
  last_status AS "lastStatus", last_error_kind AS "lastErrorKind", last_error AS "lastError", response_ms AS "responseMs",
  in_flight AS "inFlight", unrecorded_attempts AS "unrecordedAttempts"`;

export interface ListFilter {
  endpoint?: string;
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
  if (filter.endpoint) add('endpoint = ?', filter.endpoint);
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
