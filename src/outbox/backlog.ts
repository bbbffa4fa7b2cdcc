// What waits and what failed, for /metrics: a few counts, each found in an index (the journal's
// primary key, the outbox's partial indexes of pending and of failed rows), never in the delivered rows.
import type pg from 'pg';
import { ident } from '../db.ts';
import { type EndpointReport, readEndpointStates } from './endpointState.ts';

export interface Backlog {
  /** Changes in the journal not yet turned into events. */
  journal: number;
  /** Outbox events waiting for their first or next attempt. */
  pending: number;
  /** Outbox events given up on. */
  failed: number;
  /** Age of the oldest change or event still to deliver, in seconds (0 when none). */
  oldestPendingSeconds: number;
  /** Each endpoint's status (up, down, paused). */
  endpoints: Pick<EndpointReport, 'endpoint' | 'status'>[];
}

export async function readBacklog(db: pg.Pool, schemaName: string, endpoints: readonly string[] = ['default']): Promise<Backlog> {
  const schema = ident(schemaName);
  const { rows } = await db.query<{ journal: number; pending: number; failed: number; oldest: number | null }>(
    `SELECT (SELECT count(*) FROM ${schema}.change)::float8 AS journal,
            p.pending::float8 AS pending,
            (SELECT count(*) FROM ${schema}.outbox WHERE status = 'failed')::float8 AS failed,
            extract(epoch FROM now() - least(p.oldest, (SELECT changed_at FROM ${schema}.change ORDER BY id LIMIT 1)))::float8 AS oldest
       -- Pending is "next_attempt_at IS NOT NULL" (a check constraint), the predicate of outbox_due.
       FROM (SELECT count(*) AS pending, min(created_at) AS oldest FROM ${schema}.outbox WHERE next_attempt_at IS NOT NULL) p`,
  );
  const row = rows[0]!;
  const states = await readEndpointStates(db, schemaName, endpoints);
  return {
    journal: row.journal,
    pending: row.pending,
    failed: row.failed,
    oldestPendingSeconds: Math.max(0, row.oldest ?? 0),
    endpoints: states.map(({ endpoint, status }) => ({ endpoint, status })),
  };
}
