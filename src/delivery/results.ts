// What an endpoint's dispatcher does with each attempt's outcome: the result it makes of its event
// (pure), the log line of a failed attempt, and the writer that records results in batches. A
// result that cannot be written is kept and written again later; nothing is dropped.
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import { isFreeAttempt } from './breaker.ts';
import type { AttemptRecord, ClaimedEvent, EventStore, RecordOutcome } from './eventStore.ts';
import { nextAttempt } from './retryPolicy.ts';
import type { Outcome } from './sender.ts';

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

/** Logs a failed attempt: at error when its event is given up, else at warn. */
export function logFailedAttempt(log: Logger, result: AttemptRecord, probe: boolean): void {
  const { event } = result;
  const fields = {
    endpoint: event.endpoint,
    eventId: event.eventId,
    orderId: event.orderId,
    eventType: event.eventType,
    attempt: event.attempt,
    kind: result.errorKind,
    reason: result.error,
    next: result.status === 'pending' ? result.nextAttemptAt : 'failed',
    ...(probe ? { probe: true } : {}),
  };
  if (result.status === 'failed') log.error(fields, 'delivery attempt failed; no retries left: the event is given up (failed)');
  else if (result.free) log.warn(fields, 'probe failed: the endpoint is still down; the event keeps its retries');
  else log.warn(fields, 'delivery attempt failed; will retry');
}

export interface ResultWriterHooks {
  /** These results are written (`outcome` says what they freed). */
  written(records: readonly AttemptRecord[], outcome: RecordOutcome): void;
  /** A write failed: its results are kept; call flush() again later (not in a tight loop against a database that is away). */
  failed(): void;
  /** A write ended, well or not. */
  ended(): void;
}

/**
 * How long a result may wait for others to be written with it. Results written one at a time cost
 * the database and the service a statement each; a write is not on a delivery's path (the request
 * has ended), and a result not yet written is sent again after a crash, never lost.
 */
export const RECORD_GATHER_MS = 5;

/** Writes results in batches: while a write runs, the next ones gather; a lone result waits RECORD_GATHER_MS for company. */
export class ResultWriter {
  private results: AttemptRecord[] = [];
  private flushing: Promise<void> | undefined;
  /** When the oldest result not yet written came, and the timer that writes it once it waited. */
  private since = 0;
  private gatherTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Pick<EventStore, 'record'>,
    private readonly log: Logger,
    private readonly hooks: ResultWriterHooks,
    /** A full batch (the endpoint's concurrency) is written at once. */
    private readonly fullBatch = 1,
  ) {}

  add(result: AttemptRecord): void {
    if (this.results.length === 0) this.since = Date.now();
    this.results.push(result);
  }

  /** Results not yet written. */
  get waiting(): number {
    return this.results.length;
  }

  /** Nothing to write and no write under way. */
  get idle(): boolean {
    return this.results.length === 0 && !this.flushing;
  }

  /** Writes what waits: at once when `now` (a stop) or when a full batch waits, else once the oldest waited RECORD_GATHER_MS. */
  flush(now = false): void {
    if (this.flushing || this.results.length === 0) return;
    const waited = Date.now() - this.since;
    if (!now && this.results.length < this.fullBatch && waited < RECORD_GATHER_MS) {
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
          this.hooks.written(written, outcome);
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
          this.hooks.failed();
        } else {
          this.flush();
        }
        this.hooks.ended();
      });
  }
}
