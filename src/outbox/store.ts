// The event store over both tables: new changes come from the journal (a first attempt is sent from
// there and recorded with the statement that deletes its change), everything else from the outbox.
// Each operation splits its events by where they are held; callers never need to know.
import type pg from 'pg';
import type { MappingOptions } from '../mapping/mapping.ts';
import type { AttemptRecord, ClaimedEvent, EventStore, NewChanges, RecordOutcome } from '../delivery/eventStore.ts';
import { Journal } from './journal.ts';
import { Outbox } from './outbox.ts';

export class PostgresEventStore implements EventStore {
  private readonly journal: Journal;
  private readonly outbox: Outbox;

  constructor(pool: pg.Pool, schema: string, installation: string, mapping: MappingOptions) {
    this.journal = new Journal(pool, schema, installation, mapping);
    this.outbox = new Outbox(pool, schema);
  }

  get batchSize(): number {
    return this.journal.batch;
  }

  async claimNew(limit: number, leaseMs: number): Promise<NewChanges> {
    const claimed = await this.journal.claim(limit, leaseMs);
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
    return { changes: claimed.changes, send: claimed.send, queued, queueError, unmatched: claimed.unmatched, filtered: claimed.filtered };
  }

  claimDue(limit: number, leaseMs: number): Promise<ClaimedEvent[]> {
    return this.outbox.claimDue(limit, leaseMs);
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
