// What the dispatcher needs from storage, whichever table an event is in: claim events with a lease,
// record how each attempt went, and give back what was not (or not fully) sent. One event lives in
// the journal until its first result is recorded, then in the outbox; the store hides which.
import type { FailureKind } from './failure.ts';

export interface ClaimedEvent {
  /** Where the store holds it: a journal change (first attempt) or an outbox row. Only the store reads these two. */
  readonly source: 'journal' | 'outbox';
  readonly id: string;
  /** The receiver it goes to (`default` for `webHook`). */
  readonly endpoint: string;
  readonly eventId: string;
  readonly orderId: string;
  readonly eventType: string;
  /** The exact bytes sent (and signed). */
  readonly body: string;
  /** This claim's attempt number, from 1 (X-Event-Attempt). */
  readonly attempt: number;
  /** Of those, the attempts that count against its retries (probes of a down endpoint do not); `attempt` when absent. */
  readonly counted?: number;
  /**
   * Later events of its order for the same endpoint, claimed with it (from the journal): each is sent
   * once the one before is delivered, in this order; what is not sent is given back with it.
   */
  readonly followers?: readonly ClaimedEvent[];
}

/** An event and its followers, in the order they are sent. */
export function withFollowers(events: readonly ClaimedEvent[]): ClaimedEvent[] {
  return events.flatMap((e) => (e.followers ? [e, ...e.followers] : [e]));
}

/** How an attempt went, and what its event becomes. */
export interface AttemptResult {
  startedAt: Date;
  durationMs: number;
  httpStatus: number | null;
  error: string | null;
  errorKind: FailureKind | null;
  status: 'pending' | 'delivered' | 'failed';
  /** For `pending`: when to try again. */
  nextAttemptAt: Date | null;
  /** A probe that found its endpoint still down: the attempt does not count against the event's retries. */
  free?: boolean;
}

export interface AttemptRecord extends AttemptResult {
  event: ClaimedEvent;
}

export interface NewChanges {
  /** Changes claimed from the journal. */
  changes: number;
  /**
   * First attempts to send now, for their endpoints: of each quiet order, its first claimed change's
   * event, the later ones as its followers (each change of one event, all for one endpoint).
   */
  send: ClaimedEvent[];
  /** Events put in the outbox unsent (they wait behind their order's earlier events): look for due events. */
  queued: number;
  /** The endpoints those queued events are for. */
  queuedFor: string[];
  /** Events made from these changes (sent now or moved to the outbox), by endpoint. */
  made: Record<string, number>;
  /** Why moving the changes that must wait failed (they are claimed again when their lease ends); the first attempts are good. */
  queueError?: unknown;
  /** Changes whose state change matched no transition rule. */
  unmatched: number;
  /** Events left out by an endpoint's `events`. */
  filtered: number;
}

export interface RecordOutcome {
  /** Results applied; the others were of claims no longer ours (taken over, or recorded before). */
  applied: number;
  /** Results whose write failed, to write again later, with the reason. */
  unwritten: { records: AttemptRecord[]; error: unknown } | undefined;
  /** First attempts left the journal: later changes of their orders may be claimable now. */
  newChangesFreed: boolean;
  /** Events left `pending`: later events of their orders may be due now. */
  dueEventsFreed: boolean;
}

/** Where new changes come from: the journal, mapped into events for every endpoint. */
export interface ChangeStore {
  /** At most this many changes are claimed at once. */
  readonly batchSize: number;
  /**
   * Claims up to `limit` new changes from the journal. A change with exactly one event may be sent
   * at once while `room` (per endpoint, counted down as they are given) allows; the rest go to the outbox.
   */
  claimNew(limit: number, leaseMs: number, room: ReadonlyMap<string, number>): Promise<NewChanges>;
}

export interface EventStore {
  /**
   * Claims up to `limit` due outbox events of one endpoint, each its order's earliest pending one
   * there; none while the endpoint is down or paused, but with `probeBy` (the instance holding the
   * endpoint's probe) the earliest due one while it is down.
   */
  claimDue(endpoint: string, limit: number, leaseMs: number, probeBy?: string): Promise<ClaimedEvent[]>;
  record(results: readonly AttemptRecord[]): Promise<RecordOutcome>;
  /** Claimed and never sent: claimable again at once, the claim's attempt not counted. */
  unclaim(events: readonly ClaimedEvent[]): Promise<void>;
  /** Sent, but no result (shutdown): pending and due now, the attempt counted. */
  release(events: readonly ClaimedEvent[]): Promise<void>;
}
