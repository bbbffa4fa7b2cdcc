// Drains the change journal into the outbox: reads the oldest changes in batches, maps each to its
// events, and in one statement deletes the changes and inserts their events, the first ones already
// claimed for this instance's dispatcher when it has room (they skip a claim round trip).
import type pg from 'pg';
import { ident, lockKey, statementName } from './db.ts';
import { eventId } from './eventId.ts';
import { type Change, eventBody, type MappingOptions, mapChange } from './mapping.ts';
import type { ClaimedEvent } from './outbox.ts';

export interface TransferResult {
  /** False when another instance holds the journal: it drains, we need not. */
  locked: boolean;
  changes: number;
  events: number;
  unmatched: number;
  filtered: number;
  /** Events inserted already claimed by us, to be sent now (at most the `claim` asked for). */
  claimed: ClaimedEvent[];
}

interface ChangeRow {
  id: string;
  order_id: string;
  op: 'INSERT' | 'UPDATE';
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
  changed_us: string;
}

export interface TransferClaim {
  /** How many of the new events to claim for immediate sending (0: none). */
  limit: number;
  leaseMs: number;
}

export class Journal {
  private readonly readSql: string;
  private readonly writeSql: string;
  private readonly names: { read: string; write: string };

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    /** This installation's random id (`installation.id`), the key of every event id. */
    private readonly installation: string,
    private readonly mapping: MappingOptions,
    private readonly batchSize = 500,
  ) {
    const schema = ident(schemaName);
    this.names = { read: statementName(schemaName, 'journal read'), write: statementName(schemaName, 'journal write') };
    // Two prepared statements, no explicit transaction: read a batch, then write it in one statement
    // that takes the mapper lock, deletes the changes (only those still there) and inserts their
    // events in journal order. One mapper at a time across instances (a transaction-scoped try-lock
    // held until the write commits), so that outbox ids follow the journal's order and events of one
    // order keep their commit order; a change another instance moved meanwhile is skipped.
    this.readSql = `SELECT c.id::text AS id, c.order_id, c.op, c.old_state, c.new_state, c.old_due_date, c.new_due_date,
               (extract(epoch FROM c.changed_at) * 1000000)::bigint::text AS changed_us
        FROM ${schema}.change c ORDER BY c.id LIMIT ${Number(batchSize)}`;
    // An event may be claimed at once only if it is the first of its order in this batch and its
    // order has no pending event in the outbox (per-order order); the CTEs all see the outbox as it
    // was before this statement. The commit does not wait for its WAL flush (set_config(…, true) is
    // SET LOCAL for this implicit transaction): if a server crash undoes it, the changes are back in
    // the journal and are mapped again into events with the same ids (src/eventId.ts), so an event
    // sent meanwhile is at worst sent again under the id the receiver has seen.
    this.writeSql = `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(${lockKey(schemaName, 'map')}) AS ok),
      done AS (
        DELETE FROM ${schema}.change c WHERE c.id = ANY($5::bigint[]) AND (SELECT ok FROM lock)
        RETURNING c.id),
      mapped AS (
        SELECT e.*, row_number() OVER (PARTITION BY e.order_id ORDER BY e.n) AS nth
          FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $8::uuid[])
               WITH ORDINALITY AS e(change_id, order_id, event_type, body, event_id, n)
         WHERE e.change_id IN (SELECT id FROM done)),
      claim AS (
        SELECT m.n FROM mapped m
         WHERE m.nth = 1
           -- A sub-select, not a join: see the planning note in src/outbox.ts.
           AND (SELECT p.id FROM ${schema}.outbox p WHERE p.order_id = m.order_id AND p.status = 'pending' LIMIT 1) IS NULL
         ORDER BY m.n LIMIT $6),
      events AS (
        INSERT INTO ${schema}.outbox (event_id, change_id, order_id, event_type, body, attempts, next_attempt_at)
        SELECT m.event_id, m.change_id, m.order_id, m.event_type, m.body, CASE WHEN c.n IS NOT NULL THEN 1 ELSE 0 END,
               CASE WHEN c.n IS NOT NULL THEN now() + $7 * interval '1 ms' ELSE now() END
          FROM mapped m LEFT JOIN claim c ON c.n = m.n
         ORDER BY m.n
        RETURNING id, event_id, order_id, event_type, body, attempts)
      SELECT (SELECT ok FROM lock) AS locked, (SELECT count(*) FROM done)::int AS changes,
             (SELECT count(*) FROM events)::int AS events,
             (SELECT json_agg(json_build_array(id::text, event_id, order_id, event_type, body) ORDER BY id)
                FROM events WHERE attempts = 1) AS claimed,
             set_config('synchronous_commit', 'off', true) AS async_commit`;
  }

  /**
   * Reads up to one batch of changes, then writes their events and deletes the changes in one
   * statement, claiming up to `claim.limit` of the events for this instance.
   */
  async transfer(claim: TransferClaim = { limit: 0, leaseMs: 0 }): Promise<TransferResult> {
    const { rows } = await this.pool.query<ChangeRow>({ name: this.names.read, text: this.readSql });
    const result: TransferResult = { locked: true, changes: 0, events: 0, unmatched: 0, filtered: 0, claimed: [] };
    if (rows.length === 0) return result;
    const changeIds: string[] = [];
    const orderIds: string[] = [];
    const types: string[] = [];
    const bodies: string[] = [];
    const ids: string[] = [];
    for (const row of rows) {
      const mapped = mapChange(toChange(row), this.mapping);
      const source = { changeId: row.id, changedAtUs: row.changed_us, orderId: row.order_id };
      mapped.events.forEach((type, n) => {
        changeIds.push(row.id);
        orderIds.push(row.order_id);
        types.push(type);
        bodies.push(eventBody(row.order_id, type));
        ids.push(eventId(this.installation, source, n));
      });
      if (mapped.unmatchedState) result.unmatched++;
      result.filtered += mapped.filtered;
    }
    const written = await this.pool.query<{ locked: boolean; changes: number; events: number; claimed: [string, string, string, string, string][] | null }>({
      name: this.names.write,
      text: this.writeSql,
      values: [changeIds, orderIds, types, bodies, rows.map((r) => r.id), claim.limit, claim.leaseMs, ids],
    });
    const { locked, changes, events, claimed } = written.rows[0]!;
    if (!locked) return { locked: false, changes: 0, events: 0, unmatched: 0, filtered: 0, claimed: [] };
    return {
      ...result,
      changes,
      events,
      claimed: (claimed ?? []).map(([id, eventId, orderId, eventType, body]) => ({ id, eventId, orderId, eventType, body, attempt: 1 })),
    };
  }

  /** The installation's random id, which `migrate` created. */
  static async installationId(pool: pg.Pool, schemaName: string): Promise<string> {
    const { rows } = await pool.query<{ id: string }>(`SELECT id::text FROM ${ident(schemaName)}.installation`);
    if (!rows[0]) throw new Error(`${ident(schemaName)}.installation is empty: run \`order-webhooks migrate\``);
    return rows[0].id;
  }

  get batch(): number {
    return this.batchSize;
  }
}

function toChange(row: ChangeRow): Change {
  return {
    id: row.id,
    orderId: row.order_id,
    op: row.op,
    oldState: row.old_state,
    newState: row.new_state,
    oldDueDate: row.old_due_date,
    newDueDate: row.new_due_date,
  };
}
