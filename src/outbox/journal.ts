// The change journal, as the queue of first attempts. Changes are claimed with a lease (as outbox
// events are), and the changes claimed of an order that has nothing else in flight or pending are
// sent straight away, one after another: each one's outbox row is written once, with its first
// attempt's result, by the statement that deletes the change. Changes that must wait behind events
// of their order in the outbox, or of an order with a change of other than one event, are moved to
// the outbox unsent and go out from there.
import type pg from 'pg';
import { ident, statementName } from '../db.ts';
import { CaptureError } from '../errors.ts';
import type { Change } from '../mapping/mapping.ts';
import type { AttemptRecord, ClaimedEvent } from '../delivery/eventStore.ts';
import { attemptColumns, storedBody } from './outbox.ts';

interface ClaimedRow {
  id: string;
  order_id: string;
  op: 'INSERT' | 'UPDATE';
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
  changed_us: string;
  attempt: number;
  /** Its place among its order's rows in the journal's front (from 1). */
  nth: number;
  /** Nothing of its order is pending in the outbox. */
  quiet: boolean;
}

/** A claimed change whose events go to the outbox unsent (or, with none, that is just deleted). */
export interface MovedChange {
  changeId: string;
  /** The claim's attempt number: the move counts only while the claim is still ours. */
  claimAttempt: number;
  events: ClaimedEvent[];
  /** Attempts already started for these events (a claim that sent nothing does not count). */
  attemptsMade: number;
}

/** A claimed change, as the trigger recorded it, with what the claim knows of it. */
export interface ClaimedChange extends Change {
  /** When it was recorded, in microseconds since the epoch (exact, as text): part of its events' ids. */
  changedAtUs: string;
  /** The claim's attempt number. */
  attempt: number;
  /**
   * Nothing of its order is pending in the outbox: its order's claimed changes (from the first in the
   * journal, see claim()) may be sent at once, one after another.
   */
  quiet: boolean;
}

export class Journal {
  private readonly claimSql: string;
  private readonly moveSql: string;
  private readonly recordSql: string;
  private readonly unclaimSql: string;
  private readonly names: { claim: string; move: string; record: string };

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    private readonly batchSize = 500,
  ) {
    const schema = ident(schemaName);
    this.names = {
      claim: statementName(schemaName, 'journal claim'),
      move: statementName(schemaName, 'journal move'),
      record: statementName(schemaName, 'journal record'),
    };
    // Claims up to $1 changes from the journal's front (its oldest $3 rows), whole orders at a time:
    // an order with a claim still running there is left alone (per-order order), and every other
    // order's rows in the front are claimed together. A change is `quiet` when its order has no event
    // pending in the outbox: the order's claimed changes may then be sent from here, one after another
    // (its later rows, claimed or not, wait: an order with a claim running is skipped). Two instances claiming at once cannot both
    // get a row: the second waits for the first's row lock and then sees the lease (rows are locked in
    // journal order, so two claims cannot deadlock). What the second gets of an order may then lack
    // the order's first rows: claim() gives such rows back (see there). The claim is a
    // HOT update (fillfactor 50, no indexed column changes). Like every commit of ours it does not
    // wait for the WAL flush: a claim a server crash undoes only means the change is claimed again.
    this.claimSql = `WITH front AS MATERIALIZED (
        SELECT f.id, f.order_id, f.claimed_until, row_number() OVER (PARTITION BY f.order_id ORDER BY f.id) AS nth
          FROM (SELECT c.id, c.order_id, c.claimed_until FROM ${schema}.change c ORDER BY c.id LIMIT $3) f),
      busy AS (SELECT DISTINCT order_id FROM front WHERE claimed_until >= now()),
      picked AS (
        SELECT f.id, f.nth FROM front f
         WHERE f.order_id NOT IN (SELECT order_id FROM busy)
         ORDER BY f.id LIMIT $1)
      UPDATE ${schema}.change c
         SET attempts = c.attempts + 1, claimed_until = now() + $2 * interval '1 ms'
        FROM picked p, (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
       WHERE c.id = p.id AND (c.claimed_until IS NULL OR c.claimed_until < now())
      RETURNING c.id::text AS id, c.order_id, c.op, c.old_state, c.new_state, c.old_due_date, c.new_due_date,
                (extract(epoch FROM c.changed_at) * 1000000)::bigint::text AS changed_us, c.attempts AS attempt,
                p.nth::int AS nth,
                -- A sub-select, not a join: see the planning note in src/outbox/outbox.ts.
                (SELECT o.id FROM ${schema}.outbox o WHERE o.order_id = c.order_id AND o.status = 'pending' LIMIT 1) IS NULL
                  AS quiet`;
    // Every statement that ends a claim checks that it is still ours (same attempt number): if our
    // lease ran out and another instance claimed the change, its claim decides.
    // A move deletes the changes and inserts their events, pending, in journal order. Only the head of
    // an (endpoint, order) queue is due (migrations 7 and 9): an event is due now only if it is the
    // first of its order and endpoint here and the outbox has nothing of that order pending for that
    // endpoint; the others wait, with no time, for the trigger that makes them due when the one ahead
    // leaves `pending`. Those earliest pending events are locked while we decide (in id order, the
    // order results lock rows in), so that a result taking one out of `pending` meanwhile is seen
    // here, and one that comes later sees our events from its trigger.
    this.moveSql = `WITH m AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS m(id, attempt)),
      done AS (
        DELETE FROM ${schema}.change c USING m
         WHERE c.id = ANY($1::bigint[]) AND c.id = m.id AND c.attempts = m.attempt
        RETURNING c.id),
      e AS (
        SELECT * FROM unnest($3::bigint[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[])
          WITH ORDINALITY AS e(change_id, event_id, order_id, event_type, body, attempts, endpoint, n)),
      ahead AS MATERIALIZED (
        SELECT o.endpoint, o.order_id FROM ${schema}.outbox o
         WHERE o.id = ANY (ARRAY(
                 SELECT (SELECT p.id FROM ${schema}.outbox p
                          WHERE p.order_id = x.order_id AND p.endpoint = x.endpoint AND p.status = 'pending'
                          ORDER BY p.id LIMIT 1)
                   FROM (SELECT DISTINCT order_id, endpoint FROM unnest($5::text[], $9::text[]) AS u(order_id, endpoint)) x))
           AND o.status = 'pending'
         ORDER BY o.id
           FOR SHARE),
      moved AS (
        INSERT INTO ${schema}.outbox (event_id, change_id, order_id, event_type, body, attempts, endpoint, next_attempt_at)
        SELECT e.event_id, e.change_id, e.order_id, e.event_type, ${storedBody('e', schema)}, e.attempts, e.endpoint,
               CASE WHEN e.n = min(e.n) OVER (PARTITION BY e.endpoint, e.order_id)
                     AND (e.endpoint, e.order_id) NOT IN (SELECT endpoint, order_id FROM ahead)
                    THEN now() END
          FROM e WHERE e.change_id IN (SELECT id FROM done) ORDER BY e.n
        RETURNING 1)
      SELECT (SELECT count(*) FROM done)::int AS changes, (SELECT count(*) FROM moved)::int AS events,
             set_config('synchronous_commit', 'off', true) AS async_commit`;
    // A first attempt's result: the change leaves the journal and its event enters the outbox,
    // delivered, failed or pending its retry, with the attempt's row, unless the attempt delivered
    // it: then the outbox row is the whole record (migration 11), made when the attempt started.
    this.recordSql = `WITH r AS (
        SELECT * FROM unnest($1::bigint[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::timestamptz[], $9::timestamptz[], $10::int[], $11::int[], $12::text[], $13::text[], $14::text[])
          WITH ORDINALITY AS r(change_id, attempt, event_id, order_id, event_type, body, status, next_attempt_at,
                               started_at, duration_ms, http_status, error, error_kind, endpoint, n)),
      done AS (
        DELETE FROM ${schema}.change c USING r
         WHERE c.id = ANY($1::bigint[]) AND c.id = r.change_id AND c.attempts = r.attempt
        RETURNING c.id),
      events AS (
        INSERT INTO ${schema}.outbox (event_id, change_id, order_id, event_type, body, status, attempts, next_attempt_at,
                                      last_status, last_error, last_error_kind, response_ms, created_at, delivered_at, first_try, endpoint)
        SELECT r.event_id, r.change_id, r.order_id, r.event_type, ${storedBody('r', schema)}, r.status, r.attempt,
               CASE WHEN r.status = 'pending' THEN r.next_attempt_at END, r.http_status, r.error, r.error_kind, r.duration_ms,
               r.started_at, CASE WHEN r.status = 'delivered' THEN r.started_at END,
               CASE WHEN r.status = 'delivered' AND r.attempt = 1 THEN true END, r.endpoint
          FROM r WHERE r.change_id IN (SELECT id FROM done) ORDER BY r.n
        RETURNING id, event_id, first_try),
      attempts AS (
        INSERT INTO ${schema}.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind)
        SELECT e.id, r.event_id, r.attempt, r.started_at, r.duration_ms, r.http_status, r.error, r.error_kind
          FROM events e JOIN r ON r.event_id = e.event_id
         WHERE e.first_try IS NULL)
      SELECT (SELECT count(*) FROM events)::int AS recorded, set_config('synchronous_commit', 'off', true) AS async_commit`;
    // Claimed and never sent: the claim is undone, its attempt not counted.
    this.unclaimSql = `UPDATE ${schema}.change c SET claimed_until = NULL, attempts = c.attempts - 1
        FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)
       WHERE c.id = ANY($1::bigint[]) AND c.id = r.id AND c.attempts = r.attempt`;
  }

  /** Claims up to `limit` changes, in journal order, each order's from its first. */
  async claim(limit: number, leaseMs: number): Promise<ClaimedChange[]> {
    if (limit <= 0) return [];
    // The front (the oldest `batchSize` rows) includes the rows claimed and in flight, at its start.
    const { rows: claimed } = await this.pool.query<ClaimedRow>({
      name: this.names.claim,
      text: this.claimSql,
      values: [Math.min(limit, this.batchSize), leaseMs, this.batchSize],
    });
    // In journal order, so that moves keep it (RETURNING has no order of its own).
    claimed.sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)));
    // Of each order we may keep only its first rows: if another instance claimed an earlier row of
    // the order between our snapshot and our lock, the later rows we got must wait for it (sending or
    // moving them now could put them ahead of it). They are given back at once.
    const kept = new Map<string, number>();
    const rows: ClaimedRow[] = [];
    const giveBack: ClaimedRow[] = [];
    for (const row of claimed) {
      const before = kept.get(row.order_id) ?? 0;
      if (row.nth === before + 1) {
        kept.set(row.order_id, row.nth);
        rows.push(row);
      } else {
        kept.set(row.order_id, Infinity);
        giveBack.push(row);
      }
    }
    if (giveBack.length > 0) await this.pool.query(this.unclaimSql, [giveBack.map((r) => r.id), giveBack.map((r) => r.attempt)]);
    return rows.map(toChange);
  }

  /** Moves claimed changes' events to the outbox (pending; due now if nothing of their order is ahead) and deletes the changes. */
  async move(changes: readonly MovedChange[]): Promise<{ changes: number; events: number }> {
    if (changes.length === 0) return { changes: 0, events: 0 };
    const events = changes.flatMap((c) => c.events.map((e) => ({ e, attempts: c.attemptsMade })));
    const { rows } = await this.pool.query<{ changes: number; events: number }>({
      name: this.names.move,
      text: this.moveSql,
      values: [
        changes.map((c) => c.changeId),
        changes.map((c) => c.claimAttempt),
        events.map(({ e }) => e.id),
        events.map(({ e }) => e.eventId),
        events.map(({ e }) => e.orderId),
        events.map(({ e }) => e.eventType),
        events.map(({ e }) => e.body),
        events.map(({ attempts }) => attempts),
        events.map(({ e }) => e.endpoint),
      ],
    });
    const { changes: moved, events: inserted } = rows[0]!;
    return { changes: moved, events: inserted };
  }

  /** Records first attempts: each change leaves the journal, its event enters the outbox with the result. */
  async record(records: readonly AttemptRecord[]): Promise<{ recorded: number }> {
    if (records.length === 0) return { recorded: 0 };
    const { rows } = await this.pool.query<{ recorded: number }>({
      name: this.names.record,
      text: this.recordSql,
      values: attemptColumns(records, [
        'id',
        'attempt',
        'eventId',
        'orderId',
        'eventType',
        'body',
        'status',
        'nextAttemptAt',
        'startedAt',
        'durationMs',
        'httpStatus',
        'error',
        'errorKind',
        'endpoint',
      ]),
    });
    return { recorded: rows[0]!.recorded };
  }

  /** Undoes claims of events never sent: the changes are claimable again at once. */
  async unclaim(events: readonly ClaimedEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.pool.query(this.unclaimSql, [events.map((e) => e.id), events.map((e) => e.attempt)]);
  }

  /** Hands back events whose attempt started but has no result (shutdown): pending in the outbox, due now. */
  async release(events: readonly ClaimedEvent[]): Promise<void> {
    await this.move(events.map((e) => ({ changeId: e.id, claimAttempt: e.attempt, events: [e], attemptsMade: e.attempt })));
  }

  /** The installation's random id, which `migrate` created. */
  static async installationId(pool: pg.Pool, schemaName: string): Promise<string> {
    const { rows } = await pool.query<{ id: string }>(`SELECT id::text FROM ${ident(schemaName)}.installation`);
    // migrate fills it once, with the migration that made it: empty, it was emptied by hand.
    if (!rows[0]) {
      throw new CaptureError(
        `schema ${ident(schemaName)} is damaged: table ${ident(schemaName)}.${ident('installation')} is empty (docs/security.md, "If our schema is damaged")`,
      );
    }
    return rows[0].id;
  }

  get batch(): number {
    return this.batchSize;
  }
}

function toChange(row: ClaimedRow): ClaimedChange {
  return {
    changedAtUs: row.changed_us,
    attempt: row.attempt,
    quiet: row.quiet,
    id: row.id,
    orderId: row.order_id,
    op: row.op,
    oldState: row.old_state,
    newState: row.new_state,
    oldDueDate: row.old_due_date,
    newDueDate: row.new_due_date,
  };
}
