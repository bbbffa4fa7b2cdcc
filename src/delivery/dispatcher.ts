// The loop that delivers events: keeps up to `concurrency` requests in flight, takes first attempts
// claimed from the journal (by the drainer) and claims due outbox events itself, and writes results
// back in batches. Nothing is dropped: a result that cannot be written is kept and written later; an
// event whose result never gets written is claimed again once its lease runs out.
import { randomInt } from 'node:crypto';
import { describeDbError } from '../db.ts';
import type { Outcome, Sender } from './sender.ts';
import type { FirstAttemptRecord, Journal } from '../outbox/journal.ts';
import type { Logger } from '../log.ts';
import type { AttemptRecord, ClaimedEvent, Outbox } from '../outbox/outbox.ts';
import { nextAttempt } from './retryPolicy.ts';

export interface DispatcherOptions {
  concurrency: number;
  leaseMs: number;
  retryDelaysMs: readonly number[];
  /** First attempts were recorded: their changes left the journal. */
  firstAttemptsRecorded?: () => void;
}

export interface DispatchStats {
  delivered: number;
  failedAttempts: number;
  failedEvents: number;
}

export class Dispatcher {
  readonly stats: DispatchStats = { delivered: 0, failedAttempts: 0, failedEvents: 0 };
  /** By event id (journal and outbox ids are different sequences). */
  private readonly inFlight = new Map<string, ClaimedEvent>();
  /** Claimed, waiting for a free slot: a freed slot starts its next request without a round trip. */
  private ready: { event: ClaimedEvent; claimedAt: number }[] = [];
  private results: AttemptRecord[] = [];
  private filling: Promise<void> | undefined;
  private fillAgain = false;
  /**
   * Bumped whenever the outbox may hold due events we have not looked for (a poll, a move, a retry
   * coming due, a delivered event with later ones of its order waiting). A claim that comes back
   * short clears the hint only if nothing bumped it meanwhile; with no hint we do not ask.
   */
  private outboxHint = 1;
  private outboxSeen = 0;
  private flushing: Promise<void> | undefined;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly dueTimers = new Set<NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly journal: Journal,
    private readonly sender: Sender,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {}

  /**
   * How many events are worth claiming now: up to one batch beyond the free slots, and none while
   * some wait and fewer than half a batch is free (one claim per event would make claims the cost).
   */
  room(): number {
    if (this.stopping) return 0;
    const { concurrency } = this.options;
    const room = 2 * concurrency - this.inFlight.size - this.ready.length;
    if (room <= 0 || (this.ready.length > 0 && room < concurrency / 2)) return 0;
    return room;
  }

  /** Takes first attempts claimed from the journal and starts them. */
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

  /** The outbox may have due events now (a poll, or events just moved there): look. */
  lookAgain(): void {
    this.outboxHint++;
    this.wake();
  }

  private wake(): void {
    if (this.stopping) return;
    this.startReady();
    if (this.outboxSeen === this.outboxHint) return;
    if (this.filling) {
      this.fillAgain = true;
      return;
    }
    this.filling = this.fill().finally(() => {
      this.filling = undefined;
    });
  }

  private async fill(): Promise<void> {
    try {
      do {
        this.fillAgain = false;
        const room = this.room();
        if (room === 0) break;
        const hint = this.outboxHint;
        const events = await this.outbox.claimDue(room, this.options.leaseMs);
        if (events.length < room) this.outboxSeen = hint;
        else this.fillAgain = true;
        const claimedAt = Date.now();
        this.ready.push(...events.map((event) => ({ event, claimedAt })));
        if (this.stopping) break;
        this.startReady();
      } while (this.fillAgain && !this.stopping && this.outboxSeen !== this.outboxHint);
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
    const journal = events.filter((e) => e.from === 'journal');
    const outbox = events.filter((e) => e.from === 'outbox');
    await Promise.all([this.journal.unclaim(journal), this.outbox.unclaim(outbox)]).catch((error) =>
      this.log.warn(
        { error: describeDbError(error), events: events.length },
        'giving back unsent events failed; they are claimed again when their lease runs out',
      ),
    );
  }

  private retrySoon(): void {
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.lookAgain();
      if (this.results.length > 0) this.flush();
    }, 1000);
  }

  /** Looks in the outbox when a retry we scheduled comes due. */
  private lookAt(at: Date): void {
    const timer = setTimeout(
      () => {
        this.dueTimers.delete(timer);
        this.lookAgain();
      },
      Math.max(0, at.getTime() - Date.now()) + 5,
    );
    this.dueTimers.add(timer);
  }

  private deliver(event: ClaimedEvent): void {
    this.inFlight.set(event.eventId, event);
    void this.sender
      .send({ eventId: event.eventId, attempt: event.attempt, body: event.body })
      // Sender.send reports request failures as outcomes; anything it throws is a bug of ours, which
      // still becomes a failed attempt on record rather than an unhandled rejection that kills the process.
      .catch(
        (error: unknown): Outcome => ({
          ok: false,
          startedAt: new Date(),
          durationMs: 0,
          httpStatus: null,
          error: `internal: ${(error as Error).message ?? String(error)}`,
          retryAfterMs: null,
        }),
      )
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
            {
              eventId: event.eventId,
              orderId: event.orderId,
              eventType: event.eventType,
              attempt: event.attempt,
              error: outcome.error,
              next: status === 'pending' ? nextAttemptAt : 'failed',
            },
            'delivery attempt failed',
          );
        }
        this.results.push({
          event,
          startedAt: outcome.startedAt,
          durationMs: outcome.durationMs,
          httpStatus: outcome.httpStatus,
          error: outcome.error,
          status,
          nextAttemptAt,
        });
      })
      .finally(() => {
        this.inFlight.delete(event.eventId);
        this.flush();
        this.wake(); // starts a waiting event at once
        this.resolveIfSettled();
      });
  }

  /** Writes collected results, one statement per source; while a write runs, the next ones gather. */
  private flush(): void {
    if (this.flushing || this.results.length === 0) return;
    const batch = this.results;
    this.results = [];
    const first = batch.filter((r): r is FirstAttemptRecord => r.event.from === 'journal');
    const retries = batch.filter((r) => r.event.from === 'outbox');
    const written = (part: AttemptRecord[]) => {
      for (const r of part) if (r.status === 'pending' && r.nextAttemptAt) this.lookAt(r.nextAttemptAt);
      // An outbox event that left `pending` may have later events of its order waiting there.
      if (part.some((r) => r.event.from === 'outbox' && r.status !== 'pending')) this.outboxHint++;
    };
    let retryLater = false;
    const failed = (part: AttemptRecord[], error: unknown) => {
      retryLater = true;
      this.results = part.concat(this.results);
      this.log.warn({ error: describeDbError(error), results: part.length }, 'recording delivery results failed; will retry');
      this.retrySoon();
    };
    this.flushing = Promise.all([
      this.journal.record(first).then(
        ({ recorded }) => {
          if (recorded < first.length) {
            // A retried write whose first try did commit, or a claim that ran out and was taken over.
            this.log.warn(
              { results: first.length - recorded },
              'first attempts not recorded: already recorded, or their claims had run out and were taken over',
            );
          }
          written(first);
          if (first.length > 0) this.options.firstAttemptsRecorded?.();
        },
        (error) => failed(first, error),
      ),
      this.outbox.record(retries).then(
        () => written(retries),
        (error) => failed(retries, error),
      ),
    ]).then(() => {
      this.flushing = undefined;
      // After a failure the next write waits for retrySoon(), not a tight loop against a database that is away.
      if (!retryLater) this.flush();
      this.wake();
      this.resolveIfSettled();
    });
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
    for (const timer of this.dueTimers) clearTimeout(timer);
    this.dueTimers.clear();
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
      this.log.warn(
        { inFlight: unfinished.length, unrecorded: this.results.length },
        'stopped before every request finished; those events will be retried',
      );
      await Promise.all([
        this.journal.release(unfinished.filter((e) => e.from === 'journal')),
        this.outbox.release(unfinished.filter((e) => e.from === 'outbox')),
      ]).catch((error) =>
        this.log.warn({ error: describeDbError(error) }, 'releasing unfinished events failed; they are retried when their lease runs out'),
      );
    }
    return done;
  }
}
