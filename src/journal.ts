// Drains the change journal into the outbox: reads unprocessed changes in batches, maps each to its
// events, and writes them and marks the changes done in one statement. Also keeps this instance's listener row, which
// tells the capture trigger whether a NOTIFY is needed (see migrations/capture.sql).
import type pg from 'pg';
import { ident, literal, lockKey, statementName } from './db.ts';
import { type Change, eventBody, type MappingOptions, mapChange } from './mapping.ts';

export interface TransferResult {
  /** False when another instance holds the journal: it drains, we need not. */
  locked: boolean;
  changes: number;
  events: number;
  unmatched: number;
  filtered: number;
}

interface ChangeRow {
  id: string;
  order_id: string;
  op: 'INSERT' | 'UPDATE';
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
}

export class Journal {
  private readonly schema: string;
  private readonly readSql: string;
  private readonly writeSql: string;
  private readonly names: { read: string; write: string };
  private readonly busySql: string;
  private readonly idleSql: (listeningMs: number) => string;

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    private readonly instance: string,
    private readonly mapping: MappingOptions,
    private readonly batchSize = 500,
  ) {
    const schema = ident(schemaName);
    this.schema = schema;
    this.names = { read: statementName(schemaName, 'journal read'), write: statementName(schemaName, 'journal write') };
    // Two prepared statements, no explicit transaction: read a batch, then write it in one statement
    // that takes the mapper lock, marks the changes done (only those still unprocessed) and inserts
    // their events in journal order. One mapper at a time across instances (a transaction-scoped
    // try-lock held until the write commits), so that outbox ids follow the journal's order and events
    // of one order keep their commit order; a change another instance wrote meanwhile is skipped.
    this.readSql = `SELECT c.id::text AS id, c.order_id, c.op, c.old_state, c.new_state, c.old_due_date, c.new_due_date
        FROM ${schema}.change c WHERE c.processed_at IS NULL ORDER BY c.id LIMIT ${Number(batchSize)}`;
    // The commit need not wait for its WAL flush (set_config(…, true) is SET LOCAL for this implicit
    // transaction): if the server crashes before the flush, the changes are simply unprocessed again.
    // No event can have been sent meanwhile, because sending needs a claim (src/outbox.ts), whose
    // synchronous commit flushes this transaction's WAL first.
    this.writeSql = `WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(${lockKey(schemaName, 'map')}) AS ok),
      done AS (
        UPDATE ${schema}.change c SET processed_at = now(), event_count = d.event_count
          FROM unnest($5::bigint[], $6::int[]) AS d(id, event_count)
         WHERE c.id = d.id AND c.processed_at IS NULL AND (SELECT ok FROM lock)
        RETURNING c.id),
      events AS (
        INSERT INTO ${schema}.outbox (change_id, order_id, event_type, body)
        SELECT e.change_id, e.order_id, e.event_type, e.body
          FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
               WITH ORDINALITY AS e(change_id, order_id, event_type, body, n)
         WHERE e.change_id IN (SELECT id FROM done)
         ORDER BY e.n
        RETURNING 1)
      SELECT (SELECT ok FROM lock) AS locked, (SELECT count(*) FROM done)::int AS changes,
             (SELECT count(*) FROM events)::int AS events, set_config('synchronous_commit', 'off', true) AS async_commit`;
    this.busySql = `INSERT INTO ${schema}.listener (instance, busy_until) VALUES ($1, now() + $2 * interval '1 ms')
      ON CONFLICT (instance) DO UPDATE SET busy_until = EXCLUDED.busy_until`;
    // In one implicit transaction: mark idle and listening, then try the exclusive wake lock. Any
    // order transaction that did not notify holds the shared lock until it commits, so success means
    // all of them have committed and the next claim sees their changes; later ones see us idle and
    // notify, and those that run before we commit fail their try-lock and notify.
    this.idleSql = (listeningMs: number) =>
      `UPDATE ${schema}.listener SET busy_until = '-infinity', listening_until = now() + ${Number(listeningMs)} * interval '1 ms'
        WHERE instance = ${literal(instance)};
      SELECT pg_try_advisory_xact_lock(${lockKey(schemaName, 'wake')}) AS quiet`;
  }

  /** Reads up to one batch of changes, then writes their events and marks them done in one statement. */
  async transfer(): Promise<TransferResult> {
    const { rows } = await this.pool.query<ChangeRow>({ name: this.names.read, text: this.readSql });
    const result: TransferResult = { locked: true, changes: 0, events: 0, unmatched: 0, filtered: 0 };
    if (rows.length === 0) return result;
    const changeIds: string[] = [];
    const orderIds: string[] = [];
    const types: string[] = [];
    const bodies: string[] = [];
    const counts: number[] = [];
    for (const row of rows) {
      const mapped = mapChange(toChange(row), this.mapping);
      for (const type of mapped.events) {
        changeIds.push(row.id);
        orderIds.push(row.order_id);
        types.push(type);
        bodies.push(eventBody(row.order_id, type));
      }
      counts.push(mapped.events.length);
      if (mapped.unmatchedState) result.unmatched++;
      result.filtered += mapped.filtered;
    }
    const written = await this.pool.query<{ locked: boolean; changes: number; events: number }>({
      name: this.names.write,
      text: this.writeSql,
      values: [changeIds, orderIds, types, bodies, rows.map((r) => r.id), counts],
    });
    const { locked, changes, events } = written.rows[0]!;
    if (!locked) return { locked: false, changes: 0, events: 0, unmatched: 0, filtered: 0 };
    return { ...result, changes, events };
  }

  get batch(): number {
    return this.batchSize;
  }

  /** Says this instance is draining, so order transactions skip NOTIFY until `busyMs` from now. */
  async markBusy(busyMs: number): Promise<void> {
    await this.pool.query(this.busySql, [this.instance, busyMs]);
  }

  /**
   * Says this instance is going to sleep and listens for `listeningMs` (it must go idle again within
   * that, or the trigger stops notifying). True when no order transaction can have missed it.
   */
  async markIdle(listeningMs: number): Promise<boolean> {
    const results = (await this.pool.query(this.idleSql(listeningMs))) as unknown as pg.QueryResult<{ quiet: boolean }>[];
    return results[1]!.rows[0]!.quiet;
  }

  /** Removes rows of instances that have been gone or idle for an hour; run at start. */
  async forgetStaleListeners(): Promise<void> {
    await this.pool.query(
      `DELETE FROM ${this.schema}.listener
        WHERE busy_until < now() - interval '1 hour' AND listening_until < now() - interval '1 hour'
          AND started_at < now() - interval '1 hour'`,
    );
  }

  async removeListener(): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.schema}.listener WHERE instance = $1`, [this.instance]);
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
