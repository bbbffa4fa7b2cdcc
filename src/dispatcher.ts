// The loop that delivers outbox events: keeps up to `concurrency` requests in flight, claims more
// ahead of time in batches, and writes results back in batches. Nothing is dropped: a result that cannot be
// written is kept and written later; an event whose result never gets written is claimed again
// once its lease runs out.
import { randomInt } from 'node:crypto';
import { describeDbError } from './db.ts';
import type { Outcome, Sender } from './deliver.ts';
import type { Logger } from './log.ts';
import type { AttemptRecord, ClaimedEvent, Outbox } from './outbox.ts';
import { nextAttempt } from './retryPolicy.ts';

export interface DispatcherOptions {
  concurrency: number;
  leaseMs: number;
  retryDelaysMs: readonly number[];
}

export interface DispatchStats {
  delivered: number;
  failedAttempts: number;
  failedEvents: number;
}

export class Dispatcher {
  readonly stats: DispatchStats = { delivered: 0, failedAttempts: 0, failedEvents: 0 };
  private readonly inFlight = new Map<string, ClaimedEvent>();
  /** Claimed, waiting for a free slot: a freed slot starts its next request without a round trip. */
  private ready: { event: ClaimedEvent; claimedAt: number }[] = [];
  private results: AttemptRecord[] = [];
  private filling: Promise<void> | undefined;
  private fillAgain = false;
  private flushing: Promise<void> | undefined;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly sender: Sender,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {}

  /** How many events it could take right now without claiming more than it does itself. */
  room(): number {
    if (this.stopping) return 0;
    return Math.max(0, 2 * this.options.concurrency - this.inFlight.size - this.ready.length);
  }

  /** Takes events claimed for it elsewhere (by the journal transfer) and starts them. */
  accept(events: readonly ClaimedEvent[]): void {
    if (events.length === 0) return;
    if (this.stopping) {
      // Claimed while we were stopping: give them back at once, their attempt not counted.
      void this.unclaim([...events]);
      return;
    }
    const claimedAt = Date.now();
    for (const event of events) this.ready.push({ event, claimedAt });
    this.startReady();
  }

  /** Look for due events now. */
  wake(): void {
    if (this.stopping) return;
    this.startReady();
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    this.filling = this.fill().finally(() => {
      this.filling = undefined;
    });
  }

  // Claims up to one batch beyond the free slots, and only in batches of at least half of that while
  // some are still waiting: one claim per event would make the claim the bottleneck.
  private async fill(): Promise<void> {
    const { concurrency } = this.options;
    try {
      do {
        this.fillAgain = false;
        const room = 2 * concurrency - this.inFlight.size - this.ready.length;
        if (room <= 0 || this.stopping || (this.ready.length > 0 && room < concurrency / 2)) break;
        const events = await this.outbox.claimDue(room, this.options.leaseMs);
        const claimedAt = Date.now();
        this.ready.push(...events.map((event) => ({ event, claimedAt })));
        if (this.stopping) break;
        this.startReady();
        if (events.length === room) this.fillAgain = true;
      } while (this.fillAgain && !this.stopping);
    } catch (error) {
      this.log.warn({ error: describeDbError(error) }, 'claiming due events failed; will retry');
      this.retrySoon();
    }
  }

  /** Starts waiting events while slots are free. One that waited half its lease is given back unsent. */
  private startReady(): void {
    const stale: ClaimedEvent[] = [];
    while (!this.stopping && this.inFlight.size < this.options.concurrency && this.ready.length > 0) {
      const { event, claimedAt } = this.ready.shift()!;
      if (Date.now() - claimedAt > this.options.leaseMs / 2) stale.push(event);
      else this.deliver(event);
    }
    if (stale.length > 0) void this.unclaim(stale);
  }

  private async unclaim(events: ClaimedEvent[]): Promise<void> {
    await this.outbox.unclaim(events).catch((error) =>
      this.log.warn({ error: describeDbError(error), events: events.length }, 'giving back unsent events failed; they are claimed again when their lease runs out'),
    );
  }

  private retrySoon(): void {
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
      if (this.results.length > 0) this.flush();
    }, 1000);
  }

  private deliver(event: ClaimedEvent): void {
    this.inFlight.set(event.id, event);
    void this.sender
      .send({ eventId: event.eventId, attempt: event.attempt, body: event.body })
      // Sender.send reports request failures as outcomes; anything it throws is a bug of ours, which
      // still becomes a failed attempt on record rather than an unhandled rejection that kills the process.
      .catch((error: unknown): Outcome => ({
        ok: false,
        startedAt: new Date(),
        durationMs: 0,
        httpStatus: null,
        error: `internal: ${(error as Error).message ?? String(error)}`,
        retryAfterMs: null,
      }))
      .then((outcome) => {
        let status: AttemptRecord['status'] = 'delivered';
        let nextAttemptAt: Date | null = null;
        if (outcome.ok) {
          this.stats.delivered++;
        } else {
          this.stats.failedAttempts++;
          const next = nextAttempt(event.attempt, this.options.retryDelaysMs, outcome.retryAfterMs, randomInt(1_000_000) / 1_000_000);
          status = next.status;
          if (next.status === 'pending') nextAttemptAt = new Date(Date.now() + next.delayMs);
          else this.stats.failedEvents++;
          this.log.info(
            { eventId: event.eventId, orderId: event.orderId, eventType: event.eventType, attempt: event.attempt, error: outcome.error, next: status === 'pending' ? nextAttemptAt : 'failed' },
            'delivery attempt failed',
          );
        }
        this.results.push({
          id: event.id,
          eventId: event.eventId,
          attempt: event.attempt,
          startedAt: outcome.startedAt,
          durationMs: outcome.durationMs,
          httpStatus: outcome.httpStatus,
          error: outcome.error,
          status,
          nextAttemptAt,
        });
      })
      .finally(() => {
        this.inFlight.delete(event.id);
        this.flush();
        this.wake(); // starts a waiting event at once, and claims more if few wait
        this.resolveIfSettled();
      });
  }

  /** Writes collected results in one statement; while one write runs, the next ones gather. */
  private flush(): void {
    if (this.flushing || this.results.length === 0) return;
    const batch = this.results;
    this.results = [];
    this.flushing = this.outbox
      .record(batch)
      .then(
        () => {
          this.flushing = undefined;
          this.flush();
          // Delivered heads free the next events of their orders.
          this.wake();
        },
        (error) => {
          this.flushing = undefined;
          this.results = batch.concat(this.results);
          this.log.warn({ error: describeDbError(error), results: batch.length }, 'recording delivery results failed; will retry');
          this.retrySoon();
        },
      )
      .finally(() => this.resolveIfSettled());
  }

  /** Wakes a waiting stop() once nothing is in flight and every result is written. */
  private resolveIfSettled(): void {
    if (this.inFlight.size === 0 && this.results.length === 0 && !this.flushing) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Stops claiming, waits up to `graceMs` for requests in flight and for their results to be written. */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    // Events claimed but never sent go back at once, their attempt not counted. Within the grace
    // period only (the database may be unreachable): what is not given back by then, or what a
    // claim still running brings later, is claimed again when its lease ends.
    const deadline = Date.now() + graceMs;
    const withinGrace = async (work: Promise<unknown> | undefined) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([work, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
      clearTimeout(timer);
    };
    await withinGrace(this.filling);
    const unsent = this.ready.map((r) => r.event);
    this.ready = [];
    if (unsent.length > 0) await withinGrace(this.unclaim(unsent));
    const settled = new Promise<void>((resolve) => {
      if (this.inFlight.size === 0 && this.results.length === 0 && !this.flushing) resolve();
      else this.idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    });
    const done = await Promise.race([settled.then(() => true), timedOut]);
    clearTimeout(timer);
    if (!done) {
      // Hand back what is still in flight so the next start retries it at once, not after the lease.
      const unfinished = [...this.inFlight.values()];
      this.log.warn({ inFlight: unfinished.length, unrecorded: this.results.length }, 'stopped before every request finished; those events will be retried');
      await this.outbox.release(unfinished).catch((error) =>
        this.log.warn({ error: describeDbError(error) }, 'releasing unfinished events failed; they are retried when their lease runs out'),
      );
    }
    return done;
  }
}
