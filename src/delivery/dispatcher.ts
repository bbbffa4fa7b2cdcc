// The loop that delivers to one endpoint: keeps up to its `concurrency` requests in flight, takes the
// first attempts the fan-out (src/delivery/fanout.ts) claimed for it, claims its due events (when the
// outbox may hold some) from the event store, and writes results back in batches. Each endpoint has
// its own, so one endpoint's slow or failing receiver never holds another's slots or claims. Nothing
// is dropped: a result that cannot be written is kept and written later; an event whose result
// never gets written is claimed again once its lease runs out.
import { randomInt } from 'node:crypto';
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import { ClaimStreaks } from './claimFailures.ts';
import type { AttemptRecord, ClaimedEvent, EventStore } from './eventStore.ts';
import { internalFailure } from './failure.ts';
import { ALWAYS_UP, type EndpointGate, type EndpointStatus } from './gate.ts';
import { GiveBack } from './giveBack.ts';
import { Probe, type ProbeOptions } from './probe.ts';
import { logFailedAttempt, ResultWriter, resultOf } from './results.ts';
import type { Outcome, Outgoing } from './sender.ts';
import { claimRoom, isStale } from './slots.ts';
import { type AttemptTracer, faultTolerant } from './tracing.ts';

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
  /** For the probe of a lone endpoint with nothing due in the outbox (see src/delivery/probe.ts). */
  moveForProbe?: ProbeOptions['moveForProbe'];
}

export interface DispatchStats {
  delivered: number;
  failedAttempts: number;
  failedEvents: number;
}

export class Dispatcher {
  readonly stats: DispatchStats = { delivered: 0, failedAttempts: 0, failedEvents: 0 };
  /** Claims of due events that failed in a row (a claim only logs and retries; /readyz reads this). */
  readonly claims = new ClaimStreaks();
  /** By event id. */
  private readonly inFlight = new Map<string, ClaimedEvent>();
  /** Claimed, waiting for a free slot: a freed slot starts its next request without a round trip. */
  private ready: { event: ClaimedEvent; claimedAt: number }[] = [];
  private readonly results: ResultWriter;
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
  private stopping = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly dueTimers = new Set<NodeJS.Timeout>();
  private idleWaiters: (() => void)[] = [];
  private readonly giveBack: GiveBack;
  private readonly probe: Probe;
  private readonly endpoint: string;
  private readonly gate: EndpointGate;
  private readonly tracer: ReturnType<typeof faultTolerant> | undefined;

  constructor(
    private readonly store: EventStore,
    private readonly sender: Send,
    private readonly log: Logger,
    private readonly options: DispatcherOptions,
  ) {
    this.endpoint = options.endpoint;
    this.gate = options.gate ?? ALWAYS_UP;
    this.probe = new Probe(store, this.gate, log, options);
    this.giveBack = new GiveBack(store, log);
    this.tracer = options.tracer && faultTolerant(options.tracer, log);
    this.results = new ResultWriter(
      store,
      log,
      {
        written: (written, outcome) => {
          for (const r of written) if (r.status === 'pending' && r.nextAttemptAt) this.lookAt(r.nextAttemptAt);
          if (outcome.dueEventsFreed) this.outboxHint++;
          if (outcome.newChangesFreed) this.options.onNewChangesFreed?.();
        },
        failed: () => this.retrySoon(),
        ended: () => {
          this.wake();
          this.resolveIfSettled();
        },
      },
      options.concurrency,
    );
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
      void this.giveBack.unsent([...events]);
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
          if (status === 'down') this.accept(await this.probe.claim(() => this.lookAgain()));
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
   * Starts waiting events while slots are free. One that waited half its lease is given back unsent,
   * and so is one refused because its endpoint is not up (but the probe): refused, it is no attempt.
   */
  private startReady(): void {
    const giveBack: ClaimedEvent[] = [];
    while (!this.stopping && this.inFlight.size < this.options.concurrency && this.ready.length > 0) {
      const { event, claimedAt } = this.ready.shift()!;
      const refused = this.status() !== 'up' && !(this.status() === 'down' && this.probe.is(event));
      if (refused || isStale(Date.now() - claimedAt, this.options.leaseMs)) {
        giveBack.push(event);
        this.probe.givenBack(event);
      } else this.deliver(event, claimedAt);
    }
    if (giveBack.length > 0) void this.giveBack.unsent(giveBack);
  }

  private retrySoon(): void {
    this.retryTimer ??= setTimeout(() => {
      this.retryTimer = undefined;
      this.lookAgain();
      this.results.flush();
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

  private deliver(event: ClaimedEvent, claimedAt: number): void {
    this.inFlight.set(event.eventId, event);
    const startedAt = new Date();
    const span = this.tracer?.start(event);
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
        span?.end(outcome);
        const probe = this.probe.answered(event);
        this.gate.observe(this.endpoint, { ok: outcome.ok, errorKind: outcome.errorKind, httpStatus: outcome.httpStatus, probe });
        const result = resultOf(event, outcome, this.options.retryDelaysMs, Date.now(), randomInt(1_000_000) / 1_000_000, probe);
        if (result.status === 'delivered') this.stats.delivered++;
        else {
          this.stats.failedAttempts++;
          if (result.status === 'failed') this.stats.failedEvents++;
          logFailedAttempt(this.log, result, probe);
        }
        this.results.add(result);
        // Its followers (later events of its order): the next takes this slot as soon as it is free.
        const next = this.giveBack.next(event, result.status === 'delivered' && !this.stopping);
        if (next) this.ready.unshift({ event: next, claimedAt });
        try {
          this.options.onResult?.(result);
        } catch (error) {
          this.log.warn({ error: (error as Error).message }, 'counting an attempt for metrics failed');
        }
      })
      .finally(() => {
        this.inFlight.delete(event.eventId);
        this.results.flush();
        this.wake(); // starts a waiting event at once
        this.resolveIfSettled();
      });
  }

  /** Wakes a waiting stop() once nothing is in flight and every result is written. */
  private resolveIfSettled(): void {
    if (this.inFlight.size === 0 && this.results.idle) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** Stops claiming, waits up to `graceMs` for requests in flight and for their results to be written. */
  async stop(graceMs: number): Promise<boolean> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    this.results.flush(true); // what waits to be written with others goes now
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
    if (unsent.length > 0) await withinGrace(this.giveBack.unsent(unsent));
    const settled = new Promise<void>((resolve) => {
      if (this.inFlight.size === 0 && this.results.idle) resolve();
      else this.idleWaiters.push(resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
    });
    const done = await Promise.race([settled.then(() => true), timedOut]);
    clearTimeout(timer);
    await withinGrace(this.giveBack.settled());
    if (!done) {
      // Hand back what is still in flight so the next start retries it at once, not after the lease.
      const unfinished = [...this.inFlight.values()];
      this.log.warn(
        { inFlight: unfinished.length, unrecorded: this.results.waiting },
        'stopped before every request finished; those events will be retried',
      );
      await this.giveBack.unfinished(unfinished);
    }
    return done;
  }
}
