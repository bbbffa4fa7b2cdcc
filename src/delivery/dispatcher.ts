// The loop that delivers to one endpoint: keeps up to its `concurrency` requests in flight, takes the
// first attempts the fan-out (src/delivery/fanout.ts) claimed for it, claims its due events (when the
// outbox may hold some) from the event store, and writes results back in batches. Each endpoint has
// its own, so one endpoint's slow or failing receiver never holds another's slots or claims. Nothing
// is dropped: a result that cannot be written is kept and written later; an event whose result
// never gets written is claimed again once its lease runs out.
import { randomInt } from 'node:crypto';
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import { isFreeAttempt } from './breaker.ts';
import { ClaimStreaks } from './claimFailures.ts';
import type { AttemptRecord, ClaimedEvent, EventStore } from './eventStore.ts';
import { internalFailure } from './failure.ts';
import { ALWAYS_UP, type EndpointGate, type EndpointStatus } from './gate.ts';
import { nextAttempt } from './retryPolicy.ts';
import type { Outcome, Outgoing } from './sender.ts';
import type { AttemptSpan, AttemptTracer } from './tracing.ts';

export interface Send {
  send(outgoing: Outgoing): Promise<Outcome>;
}

export interface DispatcherOptions {
  /** The endpoint this dispatcher delivers to: it claims only that endpoint's events. */
  endpoint: string;
  concurrency: number;
  leaseMs: number;
  /**
   * How long the probe of a down endpoint stays with the instance that took it: as long as its
   * request can take and a little more, so that the probe of an instance killed while holding it is
   * free soon, not after a whole lease. Default: leaseMs.
   */
  probeLeaseMs?: number;
  retryDelaysMs: readonly number[];
  /** How long a failed database write waits before it is tried again. */
  retryWriteMs?: number;
  /** Told of every attempt's result as it comes (metrics). */
  onResult?: (result: AttemptRecord) => void;
  /** The endpoint's state (up, down, paused): nothing is claimed or sent unless up, but one probe when down. */
  gate?: EndpointGate;
  /** First attempts left the journal: later changes of their orders may be claimable now. */
  onNewChangesFreed?: () => void;
  /** A span per attempt, its context sent with the webhook (set only when tracing is on). */
  tracer?: AttemptTracer;
  /**
   * Moves one change of this endpoint from the journal to the outbox, unsent; resolves with whether
   * one moved. Asked when a probe is due and nothing in the outbox is (a lone endpoint's new changes
   * wait in the journal while it is down), so that the next probe has an event to send.
   */
  moveForProbe?: () => Promise<boolean>;
}

export interface DispatchStats {
  delivered: number;
  failedAttempts: number;
  failedEvents: number;
}

/** Whether a claimed event that waited `waitedMs` for a slot must go back unsent: it had half its lease. */
export function isStale(waitedMs: number, leaseMs: number): boolean {
  return waitedMs > leaseMs / 2;
}

/**
 * How many events are worth claiming now: up to one batch beyond the free slots, and none while
 * some wait and fewer than half a batch is free (one claim per event would make claims the cost).
 */
export function claimRoom(concurrency: number, inFlight: number, waiting: number): number {
  const room = 2 * concurrency - inFlight - waiting;
  if (room <= 0 || (waiting > 0 && room < concurrency / 2)) return 0;
  return room;
}

/**
 * What an attempt's outcome makes of its event: delivered, pending until a time, or failed. A probe
 * of an endpoint that is down and that finds it still down is free: the event stays due, its
 * retries untouched (the outage is the endpoint's, not the event's).
 */
export function resultOf(
  event: ClaimedEvent,
  outcome: Outcome,
  retryDelaysMs: readonly number[],
  now: number,
  random: number,
  probe = false,
): AttemptRecord {
  const { startedAt, durationMs, httpStatus, error, errorKind } = outcome;
  const base = { event, startedAt, durationMs, httpStatus, error, errorKind };
  if (outcome.ok) return { ...base, status: 'delivered', nextAttemptAt: null };
  if (isFreeAttempt({ ...outcome, probe })) return { ...base, status: 'pending', nextAttemptAt: new Date(now), free: true };
  const next = nextAttempt(event.counted ?? event.attempt, retryDelaysMs, outcome.retryAfterMs, random);
  if (next.status === 'failed') return { ...base, status: 'failed', nextAttemptAt: null };
  return { ...base, status: 'pending', nextAttemptAt: new Date(now + next.delayMs) };
}

/**
 * How long a result may wait for others to be written with it. Results written one at a time cost
 * the database and the service a statement each; a write is not on a delivery's path (the request
 * has ended), and a result not yet written is sent again after a crash, never lost.
 */
export const RECORD_GATHER_MS = 5;

export class Dispatcher {
  readonly stats: DispatchStats = { delivered: 0, failedAttempts: 0, failedEvents: 0 };
  /** Claims of due events that failed in a row (a claim only logs and retries; /readyz reads this). */
  readonly claims = new ClaimStreaks();
  /** By event id. */
  private readonly inFlight = new Map<string, ClaimedEvent>();
  /** Claimed, waiting for a free slot: a freed slot starts its next request without a round trip. */
  private ready: { event: ClaimedEvent; claimedAt: number }[] = [];
  private results: AttemptRecord[] = [];
  /** When the oldest result not yet written came, and the timer that writes it once it waited RECORD_GATHER_MS. */
  private resultsSince = 0;
  private gatherTimer: NodeJS.Timeout | undefined;
  private filling: Promise<void> | undefined;
  private fillAgain = false;
  /**
   * Bumped whenever the outbox may hold due events we have not looked for (a poll, events queued
   * there, a retry coming due, an event that left `pending` with later ones of its order waiting).
   * A claim that comes back short clears the hint only if nothing bumped it meanwhile; with no hint
   * we do not ask.
   */
  private outboxHint = 1;
  private outboxSeen = 0;
  private flushing: Promise<void> | undefined;
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly dueTimers = new Set<NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];
  /** The event sent as the down endpoint's probe, while it is claimed or in flight. */
  private probeId: string | undefined;
  private probing = false;
  private readonly endpoint: string;
  private readonly gate: EndpointGate;

  constructor(
    private readonly store: EventStore,
    private readonly sender: Send,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {
    this.endpoint = options.endpoint;
    this.gate = options.gate ?? ALWAYS_UP;
  }

  private status(): EndpointStatus {
    return this.gate.status(this.endpoint);
  }

  /** How many events are worth claiming now: none while stopping, or while the endpoint is down or paused. */
  room(): number {
    if (this.stopping || this.status() !== 'up') return 0;
    return claimRoom(this.options.concurrency, this.inFlight.size, this.ready.length);
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** The outbox may have due events now (a poll, a retry coming due, the endpoint's state changed): look. */
  lookAgain(): void {
    this.outboxHint++;
    this.wake();
  }

  /** Queues claimed events for a slot and starts them (first attempts the fan-out claimed for us, or due events). */
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
        const status = this.status();
        if (status !== 'up') {
          // Nothing is claimed for an endpoint that is down or paused; a down one gets its probe when due.
          this.outboxSeen = this.outboxHint;
          if (status === 'down') await this.sendProbe();
          break;
        }
        const room = this.room();
        if (room === 0) break;
        const hint = this.outboxHint;
        const events = await this.store.claimDue(this.options.endpoint, room, this.options.leaseMs);
        this.claims.succeeded('due');
        if (events.length < room) this.outboxSeen = hint;
        else this.fillAgain = true;
        this.accept(events);
      } while (this.fillAgain && !this.stopping && this.outboxSeen !== this.outboxHint);
    } catch (error) {
      this.claims.failed('due', describeDbError(error));
      this.log.warn({ error: describeDbError(error) }, 'claiming due events failed; will retry');
      this.retrySoon();
    }
  }

  /**
   * Claims the down endpoint's probe (one for all instances) and its event: the earliest due in the
   * outbox (a single endpoint's new changes wait in the journal meanwhile; the failures that opened
   * the breaker are in the outbox).
   */
  private async sendProbe(): Promise<void> {
    if (this.probing || this.probeId !== undefined || !this.gate.probeDue(this.endpoint)) return;
    this.probing = true;
    try {
      if (!(await this.gate.claimProbe(this.endpoint, this.options.probeLeaseMs ?? this.options.leaseMs))) return;
      let events: ClaimedEvent[];
      try {
        events = await this.store.claimDue(this.endpoint, 1, this.options.leaseMs, this.gate.instance);
      } catch (error) {
        void this.gate.releaseProbe(this.endpoint);
        throw error;
      }
      if (events.length === 0) {
        await this.gate.releaseProbe(this.endpoint);
        if (await this.options.moveForProbe?.()) this.lookAgain();
        return;
      }
      this.probeId = events[0]!.eventId;
      this.log.info({ endpoint: this.endpoint, eventId: this.probeId }, 'endpoint is down: sending one event as a probe');
      this.accept(events);
    } finally {
      this.probing = false;
    }
  }

  /**
   * Starts waiting events while slots are free. One that waited half its lease is given back unsent,
   * and so is one refused because its endpoint is not up (but the probe): refused, it is no attempt.
   */
  private startReady(): void {
    const giveBack: ClaimedEvent[] = [];
    while (!this.stopping && this.inFlight.size < this.options.concurrency && this.ready.length > 0) {
      const { event, claimedAt } = this.ready.shift()!;
      const refused = this.status() !== 'up' && !(this.status() === 'down' && event.eventId === this.probeId);
      if (refused || isStale(Date.now() - claimedAt, this.options.leaseMs)) {
        giveBack.push(event);
        if (event.eventId === this.probeId) {
          this.probeId = undefined;
          void this.gate.releaseProbe(this.endpoint);
        }
      } else this.deliver(event);
    }
    if (giveBack.length > 0) void this.unclaim(giveBack);
  }

  private async unclaim(events: ClaimedEvent[]): Promise<void> {
    await this.store
      .unclaim(events)
      .catch((error) =>
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
    }, this.options.retryWriteMs ?? 1000);
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
    const startedAt = new Date();
    const span = this.options.tracer && this.startSpan(this.options.tracer, event);
    const outgoing: Outgoing = { eventId: event.eventId, attempt: event.attempt, body: event.body };
    if (span) outgoing.extraHeaders = span.headers;
    void this.sender
      .send(outgoing)
      // Sender.send reports request failures as outcomes; anything it throws is a bug of ours, which
      // still becomes a failed attempt on record rather than an unhandled rejection that kills the process.
      .catch((error: unknown): Outcome => {
        const { kind, reason } = internalFailure(error);
        return { ok: false, startedAt, durationMs: 0, httpStatus: null, error: reason, errorKind: kind, retryAfterMs: null };
      })
      .then((outcome) => {
        if (span) this.endSpan(span, outcome);
        const probe = event.eventId === this.probeId;
        if (probe) this.probeId = undefined;
        this.gate.observe(this.endpoint, { ok: outcome.ok, errorKind: outcome.errorKind, httpStatus: outcome.httpStatus, probe });
        const result = resultOf(event, outcome, this.options.retryDelaysMs, Date.now(), randomInt(1_000_000) / 1_000_000, probe);
        if (result.status === 'delivered') this.stats.delivered++;
        else {
          this.stats.failedAttempts++;
          if (result.status === 'failed') this.stats.failedEvents++;
          const fields = {
            endpoint: event.endpoint,
            eventId: event.eventId,
            orderId: event.orderId,
            eventType: event.eventType,
            attempt: event.attempt,
            kind: result.errorKind,
            reason: result.error,
            next: result.status === 'pending' ? result.nextAttemptAt : 'failed',
            ...(probe ? { probe: true, endpoint: this.endpoint } : {}),
          };
          if (result.status === 'failed')
            this.log.error(fields, 'delivery attempt failed; no retries left: the event is given up (failed)');
          else if (result.free) this.log.warn(fields, 'probe failed: the endpoint is still down; the event keeps its retries');
          else this.log.warn(fields, 'delivery attempt failed; will retry');
        }
        if (this.results.length === 0) this.resultsSince = Date.now();
        this.results.push(result);
        try {
          this.options.onResult?.(result);
        } catch (error) {
          this.log.warn({ error: (error as Error).message }, 'counting an attempt for metrics failed');
        }
      })
      .finally(() => {
        this.inFlight.delete(event.eventId);
        this.flush();
        this.wake(); // starts a waiting event at once
        this.resolveIfSettled();
      });
  }

  // Tracing must never cost a delivery: a fault of its own is logged and the attempt goes on without it.
  private startSpan(tracer: AttemptTracer, event: ClaimedEvent): AttemptSpan | undefined {
    try {
      return tracer.start(event);
    } catch (error) {
      this.log.warn({ error: (error as Error).message }, 'tracing: starting a span failed');
      return undefined;
    }
  }

  private endSpan(span: AttemptSpan, outcome: Outcome): void {
    try {
      span.end(outcome);
    } catch (error) {
      this.log.warn({ error: (error as Error).message }, 'tracing: ending a span failed');
    }
  }

  /** Writes collected results; while a write runs, the next ones gather. */
  private flush(): void {
    if (this.flushing || this.results.length === 0) return;
    const waited = Date.now() - this.resultsSince;
    if (!this.stopping && this.results.length < this.options.concurrency && waited < RECORD_GATHER_MS) {
      this.gatherTimer ??= setTimeout(() => {
        this.gatherTimer = undefined;
        this.flush();
      }, RECORD_GATHER_MS - waited);
      return;
    }
    clearTimeout(this.gatherTimer);
    this.gatherTimer = undefined;
    const batch = this.results;
    this.results = [];
    this.flushing = this.store
      .record(batch)
      .then(
        (outcome) => {
          const written = outcome.unwritten ? batch.filter((r) => !outcome.unwritten!.records.includes(r)) : batch;
          if (outcome.applied < written.length) {
            this.log.warn(
              { results: written.length - outcome.applied },
              'results not applied: already recorded, or their claims had run out and were taken over',
            );
          }
          for (const r of written) if (r.status === 'pending' && r.nextAttemptAt) this.lookAt(r.nextAttemptAt);
          if (outcome.dueEventsFreed) this.outboxHint++;
          if (outcome.newChangesFreed) this.options.onNewChangesFreed?.();
          return outcome.unwritten;
        },
        (error: unknown) => ({ records: batch, error }),
      )
      .then((unwritten) => {
        this.flushing = undefined;
        if (unwritten) {
          this.results = unwritten.records.concat(this.results);
          this.log.warn(
            { error: describeDbError(unwritten.error), results: unwritten.records.length },
            'recording delivery results failed; will retry',
          );
          // The next write waits for retrySoon(), not a tight loop against a database that is away.
          this.retrySoon();
        } else {
          this.flush();
        }
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

  /** Stops claiming, waits up to `graceMs` for requests in flight and for their results to be written. */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    this.flush(); // what waits to be written with others goes now
    for (const timer of this.dueTimers) clearTimeout(timer);
    this.dueTimers.clear();
    // Events claimed but never sent go back at once, their attempt not counted. Within the grace
    // period only (the database may be unreachable): what is not given back by then, or what a
    // claim still running brings later, is claimed again when its lease ends.
    const deadline = Date.now() + graceMs;
    const withinGrace = async (work: Promise<unknown> | undefined) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        work?.catch(() => undefined),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
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
      await this.store
        .release(unfinished)
        .catch((error) =>
          this.log.warn(
            { error: describeDbError(error) },
            'releasing unfinished events failed; they are retried when their lease runs out',
          ),
        );
    }
    return done;
  }
}
