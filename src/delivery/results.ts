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

/** Writes results in batches: while a write runs, the next ones gather. */
export class ResultWriter {
  private results: AttemptRecord[] = [];
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly store: Pick<EventStore, 'record'>,
    private readonly log: Logger,
    private readonly hooks: ResultWriterHooks,
  ) {}

  add(result: AttemptRecord): void {
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

  flush(): void {
    if (this.flushing || this.results.length === 0) return;
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
