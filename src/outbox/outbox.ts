// The outbox: claims events that are due, and records how each attempt went.
import type pg from 'pg';
import { ident } from '../db.ts';
import type { AttemptRecord, ClaimedEvent } from '../delivery/eventStore.ts';

/** Each field of an attempt record, as a statement that unnests a batch of them takes it. */
const ATTEMPT_FIELDS = {
  id: (r: AttemptRecord) => r.event.id,
  attempt: (r: AttemptRecord) => r.event.attempt,
  eventId: (r: AttemptRecord) => r.event.eventId,
  orderId: (r: AttemptRecord) => r.event.orderId,
  eventType: (r: AttemptRecord) => r.event.eventType,
  body: (r: AttemptRecord) => r.event.body,
  status: (r: AttemptRecord) => r.status,
  nextAttemptAt: (r: AttemptRecord) => r.nextAttemptAt,
  startedAt: (r: AttemptRecord) => r.startedAt,
  durationMs: (r: AttemptRecord) => r.durationMs,
  httpStatus: (r: AttemptRecord) => r.httpStatus,
  error: (r: AttemptRecord) => r.error,
  errorKind: (r: AttemptRecord) => r.errorKind,
  free: (r: AttemptRecord) => r.free === true,
  endpoint: (r: AttemptRecord) => r.event.endpoint,
} satisfies Record<string, (r: AttemptRecord) => unknown>;
type AttemptField = keyof typeof ATTEMPT_FIELDS;

/** A batch of attempt records as one array per field, in the order of the statement's unnest() parameters. */
export function attemptColumns(records: readonly AttemptRecord[], fields: readonly AttemptField[]): unknown[][] {
  return fields.map((field) => records.map((record): unknown => ATTEMPT_FIELDS[field](record)));
}

/**
 * The body column's value for an event's body, in a statement that has its order_id and event_type
 * as `<alias>.order_id` and `<alias>.event_type`: NULL when event_body() makes it back byte for byte
 * (always, for the spec's body), so that only a body that differs takes room (migration 11).
 */
export function storedBody(alias: string, schema: string): string {
  return `NULLIF(${alias}.body, ${schema}.event_body(${alias}.order_id, ${alias}.event_type))`;
}

export class Outbox {
  private readonly schema: string;
  private readonly claimSql: string;
  private readonly probeSql: string;
  private readonly recordSql: string;

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
  ) {
    const schema = ident(schemaName);
    this.schema = schema;
    // Each endpoint claims its own events (an endpoint's backlog never sits in front of another's in
    // outbox_due). Only the earliest pending event of each order for the endpoint is claimable: later ones wait for it
    // (delivered or failed). They wait with no next_attempt_at (migration 7), outside outbox_due, so
    // a claim walks only heads that are due however long the queues behind them; the per-order
    // check stays for the rare second head (a move that raced a result, an operator's redelivery).
    // Claiming moves next_attempt_at to the end of the lease, so an event
    // whose instance died is claimed again once the lease runs out. Like every commit of ours it does
    // not wait for the WAL flush: a claim a server crash undoes just makes the event due again, and it
    // is sent again under the same event id, as after any lost result.
    // The statements here are written so that the plan cannot depend on statistics, which for a
    // queue are nearly always stale (ANALYZE finds everything delivered; minutes later 50,000 events
    // are pending): a due event is found by next_attempt_at (set only on a pending head) in
    // outbox_due, the earliest of its order by a sub-select on outbox_order_pending, and a row to
    // record by its primary key. A join there would let the planner scan a whole partial index
    // it believes to hold one row, for every row.
    // Nothing is claimed while the endpoint is down or paused (an uncorrelated sub-select: checked
    // once per claim, before any outbox row is read), but its probe: the earliest due event, claimed
    // by the one instance that holds the probe in endpoint_state.
    const claim = (gate: string) => `WITH due AS (
        SELECT o.id FROM ${schema}.outbox o
         WHERE o.endpoint = $3 AND o.next_attempt_at <= now() AND ${gate}
           -- "<=" means "=" here (o is pending, so the minimum is at most o.id), but its default
           -- selectivity lets the planner walk outbox_due in order and stop at the limit; with "="
           -- (one row in a million) it reads every due row and sorts them: O(backlog) per claim.
           AND o.id <= (SELECT min(p.id) FROM ${schema}.outbox p
                         WHERE p.status = 'pending' AND p.order_id = o.order_id AND p.endpoint = o.endpoint)
         ORDER BY o.next_attempt_at, o.id
         LIMIT $1
           FOR UPDATE SKIP LOCKED)
      UPDATE ${schema}.outbox o
         SET attempts = o.attempts + 1, next_attempt_at = now() + $2 * interval '1 ms'
        FROM due, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit WHERE o.id = due.id
      RETURNING 'outbox' AS source, o.id::text AS id, o.endpoint, o.event_id::text AS "eventId", o.order_id AS "orderId",
                o.event_type AS "eventType", coalesce(o.body, ${schema}.event_body(o.order_id, o.event_type)) AS body, o.attempts AS attempt, o.attempts - o.free_attempts AS counted`;
    this.claimSql = claim(`NOT EXISTS (SELECT 1 FROM ${schema}.endpoint_state s WHERE s.endpoint = $3 AND (s.paused OR s.state = 'down'))`);
    this.probeSql = claim(
      `EXISTS (SELECT 1 FROM ${schema}.endpoint_state s WHERE s.endpoint = $3 AND NOT s.paused AND s.probe_by = $4 AND s.probe_until > now())`,
    );
    // A result counts only if the event is still ours (same attempt, still pending): if our lease ran
    // out and another instance claimed it, its attempt decides. The attempt row is kept either way,
    // but for a first attempt that delivered the event and counted: the outbox row is its record
    // (migration 11), delivered_at the time it started.
    // The rows are found by `id = ANY(…)`, an index condition on the primary key, and only then
    // joined to the results: joined directly, a batch of a few hundred results was planned as a hash
    // join over a sequential scan of the whole outbox (seconds per batch on a large outbox).
    // "Not delivered or failed" rather than "pending": no partial index's predicate matches it.
    // Its commit does not wait for the WAL flush (set_config(…, true) is SET LOCAL for this implicit
    // transaction): a result lost in a server crash means the event is sent again with the same
    // event id, as when the service dies before recording.
    this.recordSql = `WITH r AS (
        SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],
                             $7::text[], $8::text[], $9::timestamptz[], $10::text[], $11::boolean[])
          AS r(id, event_id, attempt, started_at, duration_ms, http_status, error, status, next_attempt_at, error_kind, free)),
      updated AS (
        UPDATE ${schema}.outbox o
           SET status = r.status, last_status = r.http_status, last_error = r.error, last_error_kind = r.error_kind,
               response_ms = r.duration_ms, free_attempts = o.free_attempts + r.free::int,
               next_attempt_at = CASE WHEN r.status = 'pending' THEN coalesce(r.next_attempt_at, o.next_attempt_at) END,
               delivered_at = CASE WHEN r.status = 'delivered' THEN r.started_at END,
               first_try = CASE WHEN r.status = 'delivered' AND r.attempt = 1 THEN true END
          FROM r
         WHERE o.id = ANY($1::bigint[]) AND o.id = r.id AND o.attempts = r.attempt AND o.status NOT IN ('delivered', 'failed')
        RETURNING o.id, o.first_try),
      attempts AS (
        INSERT INTO ${schema}.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind)
        SELECT id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind FROM r
         WHERE r.id NOT IN (SELECT u.id FROM updated u WHERE u.first_try))
      SELECT (SELECT count(*) FROM updated)::int AS applied, set_config('synchronous_commit', 'off', true) AS async_commit`;
  }

  /** The claim statement ($1 limit, $2 lease in ms, $3 endpoint), for the bench to EXPLAIN. */
  get claimStatement(): string {
    return this.claimSql;
  }

  /**
   * Claims due heads of one endpoint's (order) queues; none while the endpoint is down or paused, but
   * with `probeBy` its probe (see the constructor).
   */
  async claimDue(endpoint: string, limit: number, leaseMs: number, probeBy?: string): Promise<ClaimedEvent[]> {
    const { rows } =
      probeBy === undefined
        ? await this.pool.query<ClaimedEvent>(this.claimSql, [limit, leaseMs, endpoint])
        : await this.pool.query<ClaimedEvent>(this.probeSql, [1, leaseMs, endpoint, probeBy]);
    // The earliest first, so that the first slots go to the oldest events.
    return rows.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
  }

  /** Gives claimed events back (shutdown): due again now, unless someone else has claimed them since. */
  async release(events: readonly ClaimedEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.schema}.outbox o SET next_attempt_at = now()
         FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
        WHERE o.id = ANY($1::bigint[]) AND o.id = r.id AND o.attempts = r.attempt AND o.status NOT IN ('delivered', 'failed')`,
      [events.map((e) => e.id), events.map((e) => e.attempt)],
    );
  }

  /** Gives back claimed events that were never sent: due now, and the claim's attempt not counted. */
  async unclaim(events: readonly ClaimedEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.pool.query(
      `UPDATE ${this.schema}.outbox o SET next_attempt_at = now(), attempts = o.attempts - 1
         FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
        WHERE o.id = ANY($1::bigint[]) AND o.id = r.id AND o.attempts = r.attempt AND o.status NOT IN ('delivered', 'failed')`,
      [events.map((e) => e.id), events.map((e) => e.attempt)],
    );
  }

  /** Records results (every attempt gets its row); returns how many events they applied to. */
  async record(records: readonly AttemptRecord[]): Promise<number> {
    if (records.length === 0) return 0;
    const { rows } = await this.pool.query<{ applied: number }>(
      this.recordSql,
      attemptColumns(records, [
        'id',
        'eventId',
        'attempt',
        'startedAt',
        'durationMs',
        'httpStatus',
        'error',
        'status',
        'nextAttemptAt',
        'errorKind',
        'free',
      ]),
    );
    return rows[0]!.applied;
  }
}
