// Decides when to look for new changes in the journal, and has the dispatcher claim them. It runs
// when woken (NOTIFY, reconnect, poll) and, while changes keep coming, polls on its own so that busy
// order transactions need not NOTIFY at all; only after a quiet spell does it go idle and let the
// trigger wake it again (the protocol is in src/wake/wakeLock.ts). It calls the dispatcher; the
// dispatcher never calls it.
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import type { WakeLock } from './wakeLock.ts';

/** What claims the new changes: the dispatcher. */
export interface ChangeSource {
  /** Claims new changes until there are none to claim now; resolves with whether any were claimed. */
  drainNew(): Promise<boolean>;
}

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
}

/**
 * While busy, each look that finds nothing doubles the wait before the next, up to this many times
 * (1, 2, 4 ms): between changes a few milliseconds apart, most looks at 1 ms found nothing and cost
 * a statement each.
 */
const BUSY_BACKOFF_STEPS = 2;

/** How soon an instance that found the wake lock held elsewhere looks again. */
const ELSEWHERE_RECHECK_MS = 1000;

export class Drainer {
  private woken = false;
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly changes: ChangeSource,
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
    /** Looks in a row that found nothing, while busy. */
    let empty = 0;
    let failures = 0;
    /** How many times in a row going idle had to wait for open order transactions. */
    let waits = 0;
    while (!this.stopped) {
      this.woken = false;
      try {
        // Awake: stop the NOTIFYs first (in parallel with the first drain; nothing depends on the order).
        const [, worked] = await Promise.all([this.wakeLock.goBusy(), this.changes.drainNew()]);
        failures = 0;
        if (worked) {
          lastWork = Date.now();
          empty = 0;
        } else empty++;
        if (Date.now() - lastWork < idleAfter) {
          await this.sleep(busyPoll * 2 ** Math.min(empty, BUSY_BACKOFF_STEPS));
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
        if (await this.changes.drainNew()) {
          lastWork = Date.now();
          continue;
        }
        // Another holder's NOTIFYs reach us too, but the holder may be a session that is ending (a
        // terminated connection of ours, or a stopped instance): look again soon rather than trust
        // it for a whole poll interval, during which no NOTIFY would come once it is gone.
        await this.sleep(state === 'elsewhere' ? Math.min(this.options.pollIntervalMs, ELSEWHERE_RECHECK_MS) : this.options.pollIntervalMs);
      } catch (error) {
        failures++;
        const pause = Math.min(100 * 2 ** failures, 5000);
        this.log.warn({ error: describeDbError(error), retryInMs: pause }, 'claiming changes from the journal failed; will retry');
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
    }
  }
}
