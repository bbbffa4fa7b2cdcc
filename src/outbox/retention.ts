// Retention: the running service deletes delivered events (and, when configured, failed ones) once
// they are older than `retention` says, with their attempts (ON DELETE CASCADE). A small batch per
// statement, rows others hold are skipped (SKIP LOCKED), and a pause of four times as long as the
// batch took between batches: delivery never waits for it, and it takes at most a fifth of one
// connection's time (on a database server already busy delivering, half was too much).
// One instance at a time (an advisory try-lock); the others skip the round.
import type pg from 'pg';
import { describeDbError, ident, lockKey } from '../db.ts';
import type { Logger } from '../log.ts';

export interface RetentionOptions {
  /** Delete delivered events delivered longer ago than this (ms); null keeps them. */
  deliveredMs: number | null;
  /** Delete failed events whose last attempt is longer ago than this (ms); null keeps them. */
  failedMs: number | null;
  /** Rows per DELETE. */
  batchSize?: number;
  /** How often a round runs (the first runs at start). */
  intervalMs?: number;
}

const DAY_MS = 24 * 3600 * 1000;

export type RetainedStatus = 'delivered' | 'failed';

const MIN_PAUSE_MS = 10;
/** Pause after each batch, as a multiple of the batch's own time. */
const PAUSE_FACTOR = 4;
// The oldest rows by walking the partial index in order, whatever the statistics say: with stale ones
// (an outbox that ANALYZE saw small) a bitmap scan reads every expired row, then sorts, per batch.
const WALK_THE_INDEX = 'SET enable_bitmapscan = off';

export class Retention {
  /** Events deleted by this instance so far, by status. */
  readonly deleted: Record<RetainedStatus, number> = { delivered: 0, failed: 0 };
  /** DELETE statements run so far. */
  statements = 0;
  private readonly sql: Record<RetainedStatus, string>;
  private readonly lock: string;
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = false;
  private wakePause: (() => void) | undefined;

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    private readonly log: Logger,
    private readonly options: RetentionOptions,
  ) {
    const schema = ident(schemaName);
    this.lock = lockKey(schemaName, 'retention');
    // The oldest first, found in the partial indexes of migration 6; rows are deleted by primary key
    // (`id = ANY`), so that no plan can turn this into a scan of the outbox.
    this.sql = {
      delivered: `DELETE FROM ${schema}.outbox WHERE id = ANY(ARRAY(
          SELECT id FROM ${schema}.outbox
           WHERE status = 'delivered' AND delivered_at < now() - $1 * interval '1 ms'
           ORDER BY delivered_at LIMIT $2
             FOR UPDATE SKIP LOCKED))`,
      // A failed event's age is its last attempt's: one replayed and failed again yesterday stays.
      failed: `DELETE FROM ${schema}.outbox WHERE id = ANY(ARRAY(
          SELECT o.id FROM ${schema}.outbox o
           WHERE o.status = 'failed' AND o.created_at < now() - $1 * interval '1 ms'
             AND NOT EXISTS (SELECT 1 FROM ${schema}.outbox_attempt a
                              WHERE a.outbox_id = o.id AND a.started_at >= now() - $1 * interval '1 ms')
           ORDER BY o.created_at LIMIT $2
             FOR UPDATE SKIP LOCKED))`,
    };
  }

  get enabled(): boolean {
    return this.options.deliveredMs !== null || this.options.failedMs !== null;
  }

  /** Runs a round now and then every interval, until stop(). */
  start(): void {
    if (!this.enabled) return;
    const next = () => {
      this.round = this.runOnce()
        .then(() => undefined)
        .catch((error) => this.log.warn({ error: describeDbError(error) }, 'retention: deleting expired events failed; will retry'))
        .finally(() => {
          this.round = undefined;
          if (!this.stopped) this.timer = setTimeout(next, this.options.intervalMs ?? 60_000);
        });
    };
    next();
  }

  /** One round: deletes every expired event, batch by batch. Resolves with how many, or null when another instance holds the lock. */
  async runOnce(): Promise<Record<RetainedStatus, number> | null> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A checked-out client has no error listener of the pool's: its connection dying between two
    // statements (during a pause) must not be an unhandled 'error' event, which ends the process.
    const onError = (error: Error) => {
      broken = error;
    };
    client.on('error', onError);
    try {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) AS ok', [this.lock]);
      if (!rows[0]!.ok) return null;
      try {
        await client.query(WALK_THE_INDEX);
        const round = { delivered: 0, failed: 0 };
        for (const status of ['delivered', 'failed'] as const) {
          const ageMs = status === 'delivered' ? this.options.deliveredMs : this.options.failedMs;
          if (ageMs !== null) round[status] = await this.deleteExpired(client, status, ageMs);
        }
        if (round.delivered + round.failed > 0) log(this.log, round);
        return round;
      } finally {
        await client.query('RESET enable_bitmapscan');
        await client.query('SELECT pg_advisory_unlock($1)', [this.lock]);
      }
    } catch (error) {
      broken = error as Error;
      throw error;
    } finally {
      // A connection that failed may be in any state: the pool closes it (and the lock goes with it).
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  /** The plan of one batch's DELETE, as the service runs it (for tests and DBAs). */
  async explain(status: RetainedStatus): Promise<string> {
    const client = await this.pool.connect();
    const onError = () => undefined; // the query in progress reports it
    client.on('error', onError);
    try {
      await client.query(WALK_THE_INDEX);
      const { rows } = await client.query(`EXPLAIN ${this.sql[status]}`, [DAY_MS, this.options.batchSize ?? 1000]);
      return rows.map((r) => r['QUERY PLAN']).join('\n');
    } finally {
      await client.query('RESET enable_bitmapscan').catch(() => undefined);
      client.removeListener('error', onError);
      client.release();
    }
  }

  private async deleteExpired(client: pg.PoolClient, status: RetainedStatus, ageMs: number): Promise<number> {
    const batch = this.options.batchSize ?? 1000;
    let total = 0;
    while (!this.stopped) {
      const started = Date.now();
      const { rowCount } = await client.query(this.sql[status], [ageMs, batch]);
      this.statements++;
      total += rowCount ?? 0;
      this.deleted[status] += rowCount ?? 0;
      if ((rowCount ?? 0) < batch) break;
      await this.pause(Math.max(MIN_PAUSE_MS, PAUSE_FACTOR * (Date.now() - started)));
    }
    return total;
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakePause = done;
    });
  }

  /** Stops after the statement under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.wakePause?.();
    await this.round;
  }
}

function log(logger: Logger, round: Record<RetainedStatus, number>): void {
  logger.info({ deleted: round }, 'retention: expired events deleted');
}
