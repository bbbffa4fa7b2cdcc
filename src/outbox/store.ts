// The event store over both tables: new changes come from the journal (a first attempt is sent from
// there and recorded with the statement that deletes its change), everything else from the outbox.
// Each operation splits its events by where they are held; callers never need to know.
import type pg from 'pg';
import { eventsOfChange, type MappingOptions } from '../mapping/mapping.ts';
import {
  type AttemptRecord,
  type ChangeStore,
  type ClaimedEvent,
  type EventStore,
  type NewChanges,
  type RecordOutcome,
  withFollowers,
} from '../delivery/eventStore.ts';
import { type ClaimedChange, Journal, type MovedChange } from './journal.ts';
import { Outbox } from './outbox.ts';

/** One receiver, as the mapping sees it: its name and which event types it wants (all when unset). */
export interface EndpointFilter {
  name: string;
  events?: MappingOptions['events'];
}

export class PostgresEventStore implements EventStore, ChangeStore {
  private readonly journal: Journal;
  private readonly outbox: Outbox;

  constructor(
    pool: pg.Pool,
    schema: string,
    /** This installation's random id (`installation.id`), the key of every event id. */
    private readonly installation: string,
    /** The transition rules. */
    private readonly transitions: MappingOptions['transitions'],
    /** Every configured endpoint, enabled or not: a change gets an event for each that wants it. */
    private readonly endpoints: readonly EndpointFilter[],
  ) {
    this.journal = new Journal(pool, schema);
    this.outbox = new Outbox(pool, schema);
  }

  get batchSize(): number {
    return this.journal.batch;
  }

  async claimNew(limit: number, leaseMs: number, room: ReadonlyMap<string, number>): Promise<NewChanges> {
    const changes = await this.journal.claim(limit, leaseMs);
    const claimed = planClaim(changes, this.installation, this.transitions, this.endpoints, room);
    // A move that fails must not hold back the first attempts claimed with it: they are sent, and the
    // changes to move stay claimed until their lease ends, then are claimed again.
    let queued = 0;
    let queueError: unknown;
    if (claimed.move.length > 0) {
      try {
        queued = (await this.journal.move(claimed.move)).events;
      } catch (error) {
        queueError = error;
      }
    }
    const queuedFor = [...new Set(claimed.move.flatMap((c) => c.events.map((e) => e.endpoint)))];
    const made: Record<string, number> = {};
    const moved = queueError === undefined ? claimed.move.flatMap((c) => c.events) : [];
    for (const event of [...withFollowers(claimed.send), ...moved]) made[event.endpoint] = (made[event.endpoint] ?? 0) + 1;
    return {
      changes: changes.length,
      send: claimed.send,
      queued,
      queuedFor,
      made,
      queueError,
      unmatched: claimed.unmatched,
      filtered: claimed.filtered,
    };
  }

  claimDue(endpoint: string, limit: number, leaseMs: number, probeBy?: string): Promise<ClaimedEvent[]> {
    return this.outbox.claimDue(endpoint, limit, leaseMs, probeBy);
  }

  async record(results: readonly AttemptRecord[]): Promise<RecordOutcome> {
    const [first, retries] = split(results, (r) => r.event);
    // Written in parallel; a part whose write failed is handed back alone, so that the other part's
    // attempt rows are not written twice.
    const outcome: RecordOutcome = { applied: 0, unwritten: undefined, newChangesFreed: false, dueEventsFreed: false };
    const write = async (part: AttemptRecord[], save: (part: AttemptRecord[]) => Promise<number>, done: () => void) => {
      if (part.length === 0) return;
      try {
        outcome.applied += await save(part);
        done();
      } catch (error) {
        outcome.unwritten = { records: [...(outcome.unwritten?.records ?? []), ...part], error };
      }
    };
    await Promise.all([
      write(
        first,
        async (part) => (await this.journal.record(part)).recorded,
        () => {
          outcome.newChangesFreed = true;
        },
      ),
      write(
        retries,
        (part) => this.outbox.record(part),
        () => {
          outcome.dueEventsFreed = retries.some((r) => r.status !== 'pending');
        },
      ),
    ]);
    return outcome;
  }

  async unclaim(events: readonly ClaimedEvent[]): Promise<void> {
    const [journal, outbox] = split(events, (e) => e);
    await Promise.all([this.journal.unclaim(journal), this.outbox.unclaim(outbox)]);
  }

  async release(events: readonly ClaimedEvent[]): Promise<void> {
    const [journal, outbox] = split(events, (e) => e);
    await Promise.all([this.journal.release(journal), this.outbox.release(outbox)]);
  }
}

/** Splits items by where their event is held: [journal, outbox]. */
function split<T>(items: readonly T[], eventOf: (item: T) => ClaimedEvent): [T[], T[]] {
  const journal: T[] = [];
  const outbox: T[] = [];
  for (const item of items) (eventOf(item).source === 'journal' ? journal : outbox).push(item);
  return [journal, outbox];
}

export interface ClaimPlan {
  /** Events to send now, each the only event of its change (`source: 'journal'`), later ones of its order as its followers. */
  send: ClaimedEvent[];
  /** Changes whose events go to the outbox unsent (or, with none, that are just deleted). */
  move: MovedChange[];
  unmatched: number;
  filtered: number;
}

/**
 * Maps claimed changes to one event per endpoint that wants it, and decides which go out at once and
 * which to the outbox. `room` is how many first attempts each endpoint's dispatcher may take now
 * (absent: none, as for a disabled endpoint). Pure.
 */
export function planClaim(
  changes: readonly ClaimedChange[],
  installation: string,
  transitions: MappingOptions['transitions'],
  endpoints: readonly EndpointFilter[],
  room: ReadonlyMap<string, number>,
): ClaimPlan {
  const plan: ClaimPlan = { send: [], move: [], unmatched: 0, filtered: 0 };
  const left = new Map(room);
  // By order, in journal order: claim() keeps of each order only a run of its first changes.
  const byOrder = new Map<string, { change: ClaimedChange; events: ClaimedEvent[] }[]>();
  for (const change of changes) {
    const events: ClaimedEvent[] = [];
    let unmatched = false;
    for (const endpoint of endpoints) {
      const mapped = eventsOfChange(change, installation, { transitions, events: endpoint.events }, endpoint.name);
      unmatched ||= mapped.unmatchedState;
      plan.filtered += mapped.filtered;
      for (const e of mapped.events)
        events.push({ source: 'journal', id: change.id, attempt: change.attempt, endpoint: endpoint.name, ...e });
    }
    if (unmatched) plan.unmatched++;
    const ofOrder = byOrder.get(change.orderId);
    if (ofOrder) ofOrder.push({ change, events });
    else byOrder.set(change.orderId, [{ change, events }]);
  }
  for (const ofOrder of byOrder.values()) {
    // An order's changes are sent straight from the journal, one after another, only when nothing of
    // the order is pending in the outbox, each has at most one event, all for one endpoint, and that
    // endpoint's dispatcher has room for them all now. Otherwise all of them go to the outbox: one
    // moved while another is sent from here would be due there at once, ahead of it.
    const events = ofOrder.flatMap((c) => c.events);
    const endpoint = events[0]?.endpoint;
    const chain =
      endpoint !== undefined &&
      ofOrder[0]!.change.quiet &&
      ofOrder.every((c) => c.events.length <= 1) &&
      events.every((e) => e.endpoint === endpoint) &&
      (left.get(endpoint) ?? 0) >= events.length;
    if (chain) {
      plan.send.push(events.length === 1 ? events[0]! : { ...events[0]!, followers: events.slice(1) });
      left.set(endpoint, left.get(endpoint)! - events.length);
    }
    for (const { change, events } of ofOrder) {
      // Sent, or with no event (just deleted): a change without events holds nothing back.
      if (chain && events.length > 0) continue;
      plan.move.push({ changeId: change.id, claimAttempt: change.attempt, events, attemptsMade: change.attempt - 1 });
    }
  }
  return plan;
}
