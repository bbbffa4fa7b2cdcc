// Storage: what each delivered event kept costs on disk. Measured after a real delivery run (the
// service delivering the order app's changes to the bench's receiver), its backlog drained and
// VACUUM run: every byte of the outbox and its attempts (heap, TOAST, free space map, visibility map
// and every index), divided by the delivered events they hold. The sizing rule of
// docs/operations.md multiplies this by events per second and the retention.
import type pg from 'pg';

export interface RelationSize {
  name: string;
  bytes: number;
}

export interface StorageResult {
  /** Delivered events in the outbox. */
  delivered: number;
  /** Every event in the outbox (pending and failed too). */
  events: number;
  attemptRows: number;
  /** The outbox and the attempts, with their indexes and TOAST. */
  totalBytes: number;
  bytesPerEvent: number;
  /** The heap (with TOAST, FSM, VM) and each index, largest first. */
  relations: RelationSize[];
}

export async function measureStorage(db: pg.Client, schema = 'order_webhooks'): Promise<StorageResult> {
  const { rows: counts } = await db.query<{ delivered: string; events: string; attempts: string }>(
    `SELECT (SELECT count(*) FROM ${schema}.outbox WHERE status = 'delivered') AS delivered,
            (SELECT count(*) FROM ${schema}.outbox) AS events,
            (SELECT count(*) FROM ${schema}.outbox_attempt) AS attempts`,
  );
  // pg_table_size: the heap with its TOAST table and the free space and visibility maps.
  const { rows: relations } = await db.query<{ name: string; bytes: string }>(
    `SELECT c.relname || ' (table)' AS name, pg_table_size(c.oid) AS bytes
       FROM pg_class c WHERE c.oid IN ('${schema}.outbox'::regclass, '${schema}.outbox_attempt'::regclass)
     UNION ALL
     SELECT i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)
       FROM pg_index i WHERE i.indrelid IN ('${schema}.outbox'::regclass, '${schema}.outbox_attempt'::regclass)
     ORDER BY 2 DESC`,
  );
  const { rows: total } = await db.query<{ bytes: string }>(
    `SELECT pg_total_relation_size('${schema}.outbox') + pg_total_relation_size('${schema}.outbox_attempt') AS bytes`,
  );
  const delivered = Number(counts[0]!.delivered);
  const totalBytes = Number(total[0]!.bytes);
  return {
    delivered,
    events: Number(counts[0]!.events),
    attemptRows: Number(counts[0]!.attempts),
    totalBytes,
    bytesPerEvent: delivered > 0 ? totalBytes / delivered : NaN,
    relations: relations.map((r) => ({ name: r.name, bytes: Number(r.bytes) })),
  };
}

/** One line per relation, bytes per delivered event each, for the bench's log. */
export function describeStorage(s: StorageResult): string {
  const per = (bytes: number) => (s.delivered > 0 ? (bytes / s.delivered).toFixed(1) : 'n/a');
  return [
    `${s.bytesPerEvent.toFixed(0)} bytes per delivered event kept (${s.totalBytes.toLocaleString('en-US')} bytes for ${s.delivered.toLocaleString('en-US')} delivered of ${s.events.toLocaleString('en-US')} events, ${s.attemptRows.toLocaleString('en-US')} attempt rows)`,
    ...s.relations.map((r) => `  ${r.name}: ${per(r.bytes)} bytes per event`),
  ].join('\n');
}
