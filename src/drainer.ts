// The loop that moves changes from the journal into the outbox. It runs when woken (NOTIFY,
// reconnect, poll) and, while changes keep coming, polls on its own so that busy order transactions
// need not NOTIFY at all; only after a quiet spell does it tell the trigger to wake it again.
import { describeDbError } from './db.ts';
import type { Journal, TransferResult } from './journal.ts';
import type { Logger } from './log.ts';

export interface DrainerOptions {
  /** The fallback poll: how long to sleep when idle, in case a wake-up was lost. */
  pollIntervalMs: number;
  /** While busy: how often to look for more changes. */
  busyPollMs?: number;
  /** How long without changes before going idle. */
  idleAfterMs?: number;
  /** Called after changes were turned into events. */
  onEvents: (result: TransferResult) => void;
}

export interface DrainStats {
  changes: number;
  events: number;
  unmatched: number;
  filtered: number;
}

const BUSY_LEASE_MS = 10_000;

export class Drainer {
  readonly stats: DrainStats = { changes: 0, events: 0, unmatched: 0, filtered: 0 };
  private woken = false;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private busyUntil = 0;

  constructor(
    private readonly journal: Journal,
    private readonly log: Logger,
    private readonly options: DrainerOptions,
  ) {}

  start(): void {
    this.loop = this.run();
  }

  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeUp?.();
    await this.loop;
  }

  private async sleep(ms: number): Promise<void> {
    if (this.woken || this.stopped) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = done;
    });
    this.wakeUp = undefined;
  }

  private async run(): Promise<void> {
    const busyPoll = this.options.busyPollMs ?? 2;
    const idleAfter = this.options.idleAfterMs ?? 50;
    let idle = false;
    let lastWork = 0;
    let failures = 0;
    while (!this.stopped) {
      this.woken = false;
      try {
        if (idle || Date.now() > this.busyUntil - BUSY_LEASE_MS / 2) {
          await this.journal.markBusy(BUSY_LEASE_MS);
          this.busyUntil = Date.now() + BUSY_LEASE_MS;
          idle = false;
        }
        const worked = await this.drainAll();
        failures = 0;
        if (worked) lastWork = Date.now();
        if (Date.now() - lastWork < idleAfter) {
          await this.sleep(busyPoll);
          continue;
        }
        // Quiet for a while: go idle. If some order transaction may still have seen us busy, look
        // once more shortly instead of sleeping for a whole poll interval.
        // Idle, it wakes at least every poll interval and goes idle again: the listening mark
        // outlives that with room to spare, and lapses soon after the service stops or dies.
        const quiet = await this.journal.markIdle(3 * this.options.pollIntervalMs + 5000);
        idle = true;
        this.busyUntil = 0;
        if (await this.drainAll()) {
          lastWork = Date.now();
          continue;
        }
        await this.sleep(quiet ? this.options.pollIntervalMs : 5);
      } catch (error) {
        failures++;
        const pause = Math.min(100 * 2 ** failures, 5000);
        this.log.warn({ error: describeDbError(error), retryInMs: pause }, 'moving changes to the outbox failed; will retry');
        idle = true;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  /**
   * Transfers batches until the journal is empty (or another instance holds it). A batch that was not
   * full means the journal is empty for now; the next poll picks up what arrives meanwhile.
   */
  private async drainAll(): Promise<boolean> {
    let worked = false;
    while (!this.stopped) {
      const result = await this.journal.transfer();
      if (!result.locked || result.changes === 0) return worked;
      worked = true;
      this.stats.changes += result.changes;
      this.stats.events += result.events;
      this.stats.unmatched += result.unmatched;
      this.stats.filtered += result.filtered;
      if (result.unmatched > 0) {
        this.log.debug({ changes: result.unmatched }, 'state changes with no matching transition rule: no event sent');
      }
      if (result.events > 0) this.options.onEvents(result);
      if (result.changes < this.journal.batch) return worked;
    }
    return worked;
  }
}
