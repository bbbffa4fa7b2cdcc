// Deleting delivered or failed events (and their attempts) before a time, in short batches.
import { type Db, ident } from '../db.ts';
import { REPLAY_BATCH } from './replay.ts';

/** How many events `purge` would delete: those of this status created before `before`. */
export async function countPurgeable(db: Db, schema: string, status: 'delivered' | 'failed', before: Date): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM ${ident(schema)}.outbox WHERE status = $1 AND created_at < $2`,
    [status, before],
  );
  return Number(rows[0]!.n);
}

/** Deletes events (and their attempts) of this status created before `before`, in short batches. */
export async function purge(
  db: Db,
  schema: string,
  status: 'delivered' | 'failed',
  before: Date,
  onBatch: (deleted: number) => void = () => undefined,
): Promise<number> {
  let deleted = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM ${ident(schema)}.outbox WHERE id IN (
         SELECT id FROM ${ident(schema)}.outbox WHERE status = $1 AND created_at < $2 ORDER BY id LIMIT $3)`,
      [status, before, REPLAY_BATCH],
    );
    deleted += rowCount ?? 0;
    onBatch(deleted);
    if ((rowCount ?? 0) < REPLAY_BATCH) return deleted;
  }
}
