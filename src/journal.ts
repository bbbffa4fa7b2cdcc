// Drains the change journal into the outbox: claims unprocessed changes in batches, maps each to its
// events and writes them, all in one transaction. Also keeps this instance's listener row, which
// tells the capture trigger whether a NOTIFY is needed (see migrations/capture.sql).
import type pg from 'pg';
import { ident, literal, lockKey } from './db.ts';
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
  locked: boolean;
  id: string | null;
  order_id: string;
  op: 'INSERT' | 'UPDATE';
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
}

export class Journal {
  private readonly schema: string;
  private readonly claimSql: string;
  private readonly writeSql: string;
  private readonly busySql: string;
  private readonly idleSql: string;

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    private readonly instance: string,
    private readonly mapping: MappingOptions,
    batchSize = 500,
  ) {
    const schema = ident(schemaName);
    this.schema = schema;
    // One mapper at a time across instances (a transaction-scoped try-lock), so that outbox ids
    // follow the journal's order and events of one order keep their commit order.
    this.claimSql = `BEGIN;
      WITH lock AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(${lockKey(schemaName, 'map')}) AS ok),
      claimed AS (
        SELECT c.id, c.order_id, c.op, c.old_state, c.new_state, c.old_due_date, c.new_due_date
          FROM ${schema}.change c
         WHERE c.processed_at IS NULL AND (SELECT ok FROM lock)
         ORDER BY c.id
         LIMIT ${Number(batchSize)}
           FOR UPDATE SKIP LOCKED)
      SELECT lock.ok AS locked, claimed.id::text AS id, claimed.order_id, claimed.op, claimed.old_state,
             claimed.new_state, claimed.old_due_date, claimed.new_due_date
        FROM lock LEFT JOIN claimed ON true
       ORDER BY claimed.id`;
    this.writeSql = `WITH events AS (
        INSERT INTO ${schema}.outbox (change_id, order_id, event_type, body)
        SELECT e.change_id, e.order_id, e.event_type, e.body
          FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
               WITH ORDINALITY AS e(change_id, order_id, event_type, body, n)
         ORDER BY e.n
        RETURNING 1)
      UPDATE ${schema}.change c SET processed_at = now(), event_count = d.event_count
        FROM unnest($5::bigint[], $6::int[]) AS d(id, event_count)
       WHERE c.id = d.id`;
    this.busySql = `INSERT INTO ${schema}.listener (instance, busy_until) VALUES ($1, now() + $2 * interval '1 ms')
      ON CONFLICT (instance) DO UPDATE SET busy_until = EXCLUDED.busy_until`;
    // In one implicit transaction: mark idle, then try the exclusive wake lock. Any order transaction
    // that saw us busy holds the shared lock until it commits, so success means all of them have
    // committed and the next claim sees their changes; later ones see us idle and notify.
    this.idleSql = `UPDATE ${schema}.listener SET busy_until = '-infinity' WHERE instance = ${literal(instance)};
      SELECT pg_try_advisory_xact_lock(${lockKey(schemaName, 'wake')}) AS quiet`;
  }

  /** Claims up to one batch of changes, writes their events, marks them done: one transaction. */
  async transfer(): Promise<TransferResult> {
    const client = await this.pool.connect();
    let failed: unknown;
    // The pool listens for errors on idle clients only: without a listener, a connection the server
    // ends while we hold it (a restart, a terminated backend) would crash the process. The query fails too.
    const onError = (error: Error) => {
      failed ??= error;
    };
    client.on('error', onError);
    try {
      const results = (await client.query(this.claimSql)) as unknown as pg.QueryResult<ChangeRow>[];
      const rows = results[1]!.rows;
      const locked = rows[0]?.locked === true;
      const changes = rows.filter((row) => row.id !== null);
      const result: TransferResult = { locked, changes: changes.length, events: 0, unmatched: 0, filtered: 0 };
      if (changes.length > 0) {
        const changeIds: string[] = [];
        const orderIds: string[] = [];
        const types: string[] = [];
        const bodies: string[] = [];
        const counts: number[] = [];
        for (const row of changes) {
          const mapped = mapChange(toChange(row), this.mapping);
          for (const type of mapped.events) {
            changeIds.push(row.id!);
            orderIds.push(row.order_id);
            types.push(type);
            bodies.push(eventBody(row.order_id, type));
          }
          counts.push(mapped.events.length);
          result.events += mapped.events.length;
          if (mapped.unmatchedState) result.unmatched++;
          result.filtered += mapped.filtered;
        }
        await client.query(this.writeSql, [changeIds, orderIds, types, bodies, changes.map((r) => r.id), counts]);
      }
      await client.query('COMMIT');
      return result;
    } catch (error) {
      failed = error;
      await client.query('ROLLBACK').catch(() => undefined); // the connection may be gone; report the first error
      throw error;
    } finally {
      client.removeListener('error', onError);
      client.release(failed instanceof Error ? failed : undefined);
    }
  }

  /** Says this instance is draining, so order transactions skip NOTIFY until `busyMs` from now. */
  async markBusy(busyMs: number): Promise<void> {
    await this.pool.query(this.busySql, [this.instance, busyMs]);
  }

  /** Says this instance is going to sleep. True when no order transaction can have missed it. */
  async markIdle(): Promise<boolean> {
    const results = (await this.pool.query(this.idleSql)) as unknown as pg.QueryResult<{ quiet: boolean }>[];
    return results[1]!.rows[0]!.quiet;
  }

  /** Removes rows of instances that have been gone or idle for an hour; run at start. */
  async forgetStaleListeners(): Promise<void> {
    await this.pool.query(
      `DELETE FROM ${this.schema}.listener WHERE busy_until < now() - interval '1 hour' AND started_at < now() - interval '1 hour'`,
    );
  }

  async removeListener(): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.schema}.listener WHERE instance = $1`, [this.instance]);
  }
}

function toChange(row: ChangeRow): Change {
  return {
    id: row.id!,
    orderId: row.order_id,
    op: row.op,
    oldState: row.old_state,
    newState: row.new_state,
    oldDueDate: row.old_due_date,
    newDueDate: row.new_due_date,
  };
}
