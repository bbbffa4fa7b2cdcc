// The loop that claims changes from the journal: first attempts go to the dispatcher, changes that
// must wait are moved to the outbox. It runs when woken (NOTIFY, reconnect, poll, a first attempt
// recorded) and, while changes keep coming, polls on its own so that busy order transactions need
// not NOTIFY at all; only after a quiet spell does it go idle and let the trigger wake it again (the
// protocol is in src/capture/wakeLock.ts).
import { describeDbError } from '../db.ts';
import type { Journal } from '../outbox/journal.ts';
import type { ClaimedEvent } from '../outbox/outbox.ts';
import type { Logger } from '../log.ts';
import type { WakeLock } from './wakeLock.ts';

export interface DrainerOptions {
  /** The fallback poll: how long to sleep when idle, in case a wake-up was lost. */
  pollIntervalMs: number;
  /** Where the trigger sends no NOTIFY (database.wakeUp): how often an idle drainer looks. */
  idlePollMs: number;
  /** While busy: how often to look for more changes. */
  busyPollMs?: number;
  /** How long without changes before going idle. */
  idleAfterMs?: number;
  /** Whether NOTIFYs can reach us now (the LISTEN connection is up): only then is going idle safe. */
  listening: () => boolean;
  /** How many changes to claim now (what the dispatcher has room for; 0: none). */
  room: () => number;
  leaseMs: number;
  /** First attempts to send now. */
  send: (events: ClaimedEvent[]) => void;
  /** Events were moved to the outbox. */
  moved: () => void;
}

export interface DrainStats {
  changes: number;
  events: number;
  unmatched: number;
  filtered: number;
}

export class Drainer {
  readonly stats: DrainStats = { changes: 0, events: 0, unmatched: 0, filtered: 0 };
  private woken = false;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly journal: Journal,
    private readonly wakeLock: WakeLock,
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
    await this.wakeLock.close();
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
    const busyPoll = this.options.busyPollMs ?? 1;
    const idleAfter = this.options.idleAfterMs ?? 50;
    let lastWork = 0;
    let failures = 0;
    /** How many times in a row going idle had to wait for open order transactions. */
    let waits = 0;
    while (!this.stopped) {
      this.woken = false;
      try {
        // Awake: stop the NOTIFYs first (in parallel with the first drain; nothing depends on the order).
        const [, worked] = await Promise.all([this.wakeLock.goBusy(), this.drainAll()]);
        failures = 0;
        if (worked) lastWork = Date.now();
        if (Date.now() - lastWork < idleAfter) {
          await this.sleep(busyPoll);
          continue;
        }
        // Quiet for a while. No NOTIFY will come (two-phase commit is possible): poll the journal.
        if (await this.wakeLock.polling()) {
          await this.sleep(this.options.idlePollMs);
          continue;
        }
        // Go idle, unless NOTIFYs cannot reach us (then the poll must do).
        if (!this.options.listening()) {
          await this.sleep(this.options.pollIntervalMs);
          continue;
        }
        const state = await this.wakeLock.goIdle();
        if (state === 'wait') {
          // An order transaction that saw us busy has not committed yet: look again shortly, less
          // often while it stays open (a long transaction must not cost us a query every 5 ms).
          waits++;
          await this.sleep(Math.min(5 * 2 ** Math.min(waits - 1, 4), 50));
          continue;
        }
        waits = 0;
        // Idle (or another instance is): what committed before the lock was ours is still to drain.
        if (await this.drainAll()) {
          lastWork = Date.now();
          continue;
        }
        await this.sleep(this.options.pollIntervalMs);
      } catch (error) {
        failures++;
        const pause = Math.min(100 * 2 ** failures, 5000);
        this.log.warn({ error: describeDbError(error), retryInMs: pause }, 'claiming changes from the journal failed; will retry');
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }

  /**
   * Claims batches until the journal has nothing more to claim now (or the dispatcher no room: then
   * the changes wait where they are, and we stay busy). A short batch means the journal's front is
   * claimed; the next poll picks up what arrives meanwhile.
   */
  private async drainAll(): Promise<boolean> {
    let worked = false;
    while (!this.stopped) {
      const limit = Math.min(this.options.room(), this.journal.batch);
      if (limit === 0) return true;
      const result = await this.journal.claim(limit, this.options.leaseMs);
      if (result.changes === 0) return worked;
      worked = true;
      this.stats.changes += result.changes;
      this.stats.unmatched += result.unmatched;
      this.stats.filtered += result.filtered;
      if (result.unmatched > 0) {
        this.log.debug({ changes: result.unmatched }, 'state changes with no matching transition rule: no event sent');
      }
      this.stats.events += result.send.length;
      this.options.send(result.send);
      if (result.move.length > 0) {
        const moved = await this.journal.move(result.move);
        this.stats.events += moved.events;
        if (moved.events > 0) this.options.moved();
      }
      if (result.changes < limit) return worked;
    }
    return worked;
  }
}
