// Deleting delivered or failed events (and their attempts) before a time, or every event of an
// endpoint removed from the config, in short batches.
import { type Db, ident } from '../db.ts';
import { type OnBatch, REPLAY_BATCH } from './replay.ts';

/**
 * What `purge` deletes: events of a status created before a time, of one endpoint or all; or every
 * event of an endpoint removed from the config (pending ones too: nothing will ever send them).
 */
export type PurgeScope = { status: 'delivered' | 'failed'; before: Date; endpoint?: string } | { removedEndpoint: string };

function condition(scope: PurgeScope): [string, unknown[]] {
  if ('removedEndpoint' in scope) return ['endpoint = $1', [scope.removedEndpoint]];
  if (scope.endpoint === undefined) return ['status = $1 AND created_at < $2', [scope.status, scope.before]];
  return ['status = $1 AND created_at < $2 AND endpoint = $3', [scope.status, scope.before, scope.endpoint]];
}

/** How many events `purge` would delete. */
export async function countPurgeable(db: Db, schema: string, scope: PurgeScope): Promise<number> {
  const [where, values] = condition(scope);
  const { rows } = await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${ident(schema)}.outbox WHERE ${where}`, values);
  return Number(rows[0]!.n);
}

/** Deletes the events (and their attempts) of the scope, in short batches. */
export async function purge(db: Db, schema: string, scope: PurgeScope, onBatch: OnBatch = () => undefined): Promise<number> {
  const [where, values] = condition(scope);
  let deleted = 0;
  for (;;) {
    const { rowCount } = await db.query(
      `DELETE FROM ${ident(schema)}.outbox WHERE id IN (
         SELECT id FROM ${ident(schema)}.outbox WHERE ${where} ORDER BY id LIMIT $${values.length + 1})`,
      [...values, REPLAY_BATCH],
    );
    deleted += rowCount ?? 0;
    onBatch(deleted);
    if ((rowCount ?? 0) < REPLAY_BATCH) return deleted;
  }
}
