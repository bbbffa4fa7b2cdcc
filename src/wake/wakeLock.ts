// The listener's half of the wake-up protocol (the trigger's half is in migrations/capture.sql).
// An instance that is idle and listening holds the wake advisory lock, exclusively and for its
// session, on a connection of its own. An order transaction whose shared try-lock fails sees it idle
// and sends NOTIFY; one whose try succeeds (the listener is draining, or none is running) sends
// nothing and holds the shared lock until it commits. So the exclusive lock is granted only once
// every such transaction has committed: after taking it the listener looks once more and then may
// sleep, since every later transaction will wake it. If this connection dies, the lock goes with it
// and the order app stops paying for NOTIFYs nobody would act on.
// Where the trigger never notifies (database.wakeUp, src/capture/wakeUp.ts), the lock is never taken
// and the drainer polls instead.
import type pg from 'pg';
import { createClient, describeDbError, isAnswerTimeout, lockKey } from '../db.ts';
import type { Logger } from '../log.ts';
import { effectiveWakeUp, maxPreparedTransactions, type WakeUpMode } from '../capture/wakeUp.ts';

/**
 * `idle`: the lock is ours, the trigger now notifies. `elsewhere`: another instance is idle and holds
 * it; its NOTIFYs reach us too. `wait`: order transactions that sent no NOTIFY are still open.
 */
export type IdleResult = 'idle' | 'elsewhere' | 'wait';

export interface WakeLockOptions {
  wakeUp: WakeUpMode;
}

/** Our statements here never wait for a lock and return one row: one unanswered this long means a dead connection. */
export const WAKE_ANSWER_MS = 5000;

export class WakeLock {
  private client: pg.Client | undefined;
  private connecting: Promise<pg.Client> | undefined;
  /** Whether the trigger notifies on this connection's server (read once per connection: a restart ends it). */
  private notifies = false;
  private held = false;
  private closed = false;
  private readonly key: string;
  private readonly idleSql: string;

  constructor(
    private readonly url: string,
    schema: string,
    private readonly log: Logger,
    /** Called when the connection is lost: whatever we held is gone. */
    private readonly onLost: () => void,
    private readonly options: WakeLockOptions,
  ) {
    this.key = lockKey(schema, 'wake');
    // The lock table is read only when the try fails, to tell an idle peer from open transactions.
    // A bigint advisory key shows in pg_locks as classid (high half), objid (low half), objsubid 1.
    this.idleSql = `SELECT CASE
        WHEN pg_try_advisory_lock($1::bigint) THEN 'idle'
        WHEN EXISTS (SELECT 1 FROM pg_locks
                      WHERE locktype = 'advisory' AND mode = 'ExclusiveLock' AND granted AND objsubid = 1
                        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                        AND ((classid::bigint << 32) | objid::bigint) = $1::bigint) THEN 'elsewhere'
        ELSE 'wait' END AS state`;
  }

  get isHeld(): boolean {
    return this.held;
  }

  /**
   * Whether the trigger sends no NOTIFY, so that an idle service must poll the journal: `poll`, or
   * `auto` on a server that allows two-phase commit.
   */
  async polling(): Promise<boolean> {
    if (this.options.wakeUp !== 'auto') return this.options.wakeUp === 'poll';
    await this.connection();
    return !this.notifies;
  }

  /** Tries to go idle: takes the lock if no order transaction that skipped NOTIFY is still open. */
  async goIdle(): Promise<IdleResult> {
    if (this.held) return 'idle';
    const { rows } = await this.query<{ state: IdleResult }>(this.idleSql, [this.key]);
    const state = rows[0]!.state;
    if (state === 'idle') this.held = true;
    return state;
  }

  /** Goes busy: gives the lock back, so that order transactions stop sending NOTIFY. */
  async goBusy(): Promise<void> {
    if (!this.held || !this.client) return;
    this.held = false;
    await this.query('SELECT pg_advisory_unlock($1::bigint)', [this.key]);
  }

  /** Closes the connection (giving the lock up with it); the next use opens a new one. */
  replace(): void {
    if (this.client) this.drop(this.client, undefined, 'wake-lock connection replaced, as the listen connection was lost');
  }

  async close(): Promise<void> {
    this.closed = true;
    this.held = false;
    const client = this.client ?? (await this.connecting?.catch(() => undefined));
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  /**
   * A query on our connection. A failure drops the connection: a timed-out query is still running on
   * it as far as pg knows, and one sent behind it would wait for ever (and make pg warn about a
   * client already executing a query).
   */
  private async query<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    const client = await this.connection();
    try {
      return await client.query<R>(sql, params);
    } catch (error) {
      this.drop(client, error as Error);
      throw error;
    }
  }

  /** Forgets a connection that failed or ended; whatever we held is gone with it. */
  private drop(client: pg.Client, error?: Error, reason?: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.held = false;
    client.removeAllListeners();
    client.on('error', () => undefined);
    // With a query still running, end() destroys the socket rather than wait for an answer.
    void client.end().catch(() => undefined);
    if (this.closed) return;
    if (reason) {
      this.log.info(reason);
    } else if (isAnswerTimeout(error)) {
      this.log.warn({ answerTimeoutMs: WAKE_ANSWER_MS }, 'wake-lock connection gave no answer in time; it is closed and will be reopened');
    } else {
      this.log.warn({ error: error ? describeDbError(error) : 'connection ended' }, 'wake-lock connection lost; it will be reopened');
    }
    this.onLost();
  }

  private connection(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client: pg.Client = createClient(
        this.url,
        { name: 'order-webhooks wake', statementTimeoutMs: WAKE_ANSWER_MS - 1000, answerTimeoutMs: WAKE_ANSWER_MS },
        (error) => this.drop(client, error),
      );
      client.on('end', () => this.drop(client));
      try {
        await client.connect();
        if (this.options.wakeUp === 'auto') {
          const prepared = await maxPreparedTransactions(client);
          this.notifies = effectiveWakeUp('auto', prepared) === 'notify';
        }
      } catch (error) {
        client.removeAllListeners();
        client.on('error', () => undefined);
        void client.end().catch(() => undefined);
        throw error;
      }
      this.client = client;
      return client;
    })().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }
}
