// The dispatcher's decisions, without a database: an in-memory event store and sender stand in for
// PostgreSQL and got (the real ones are tested end to end in delivery, retries, faults, journal).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Dispatcher, type DispatcherOptions } from '../src/delivery/dispatcher.ts';
import { resultOf } from '../src/delivery/results.ts';
import { claimRoom, isStale } from '../src/delivery/slots.ts';
import { Fanout } from '../src/delivery/fanout.ts';
import type { Outcome, Outgoing } from '../src/delivery/sender.ts';
import { createLogger } from '../src/log.ts';
import type { AttemptRecord, ChangeStore, ClaimedEvent, EventStore, NewChanges, RecordOutcome } from '../src/delivery/eventStore.ts';
import { waitFor } from './helpers/poll.ts';

const log = createLogger('silent');

function event(n: number, source: 'journal' | 'outbox' = 'journal', attempt = 1): ClaimedEvent {
  return {
    source,
    id: String(n),
    endpoint: 'default',
    eventId: `e${n}`,
    orderId: `o${n}`,
    eventType: 'OrderCreated',
    body: `{"n":${n}}`,
    attempt,
  };
}

const ok = (): Outcome => ({
  ok: true,
  startedAt: new Date(),
  durationMs: 1,
  httpStatus: 200,
  error: null,
  errorKind: null,
  retryAfterMs: null,
});
const refused = (): Outcome => ({
  ok: false,
  startedAt: new Date(),
  durationMs: 1,
  httpStatus: null,
  error: 'connect: connection refused (ECONNREFUSED)',
  errorKind: 'connect',
  retryAfterMs: null,
});

/** An event store in memory: new changes to hand out, and a log of every call. */
class MemoryStore implements EventStore, ChangeStore {
  readonly batchSize = 10;
  newEvents: ClaimedEvent[] = [];
  recorded: AttemptRecord[] = [];
  /** The size of each record() call's batch. */
  recordBatches: number[] = [];
  unclaimed: ClaimedEvent[] = [];
  released: ClaimedEvent[] = [];
  claimNewCalls = 0;
  /** Makes the next record() calls fail. */
  failRecords = 0;
  freeNew = false;

  /** Makes the next claimNew() report that moving its waiting changes failed. */
  queueError: unknown;

  async claimNew(limit: number): Promise<NewChanges> {
    this.claimNewCalls++;
    const send = this.newEvents.splice(0, limit);
    const queueError = this.queueError;
    this.queueError = undefined;
    return {
      changes: send.length,
      send,
      queued: 0,
      queuedFor: [],
      made: send.length ? { default: send.length } : {},
      queueError,
      unmatched: 0,
      filtered: 0,
    };
  }

  async claimDue(): Promise<ClaimedEvent[]> {
    return [];
  }

  async record(results: readonly AttemptRecord[]): Promise<RecordOutcome> {
    if (this.failRecords > 0) {
      this.failRecords--;
      return {
        applied: 0,
        unwritten: { records: [...results], error: new Error('database away') },
        newChangesFreed: false,
        dueEventsFreed: false,
      };
    }
    this.recorded.push(...results);
    this.recordBatches.push(results.length);
    return { applied: results.length, unwritten: undefined, newChangesFreed: this.freeNew, dueEventsFreed: false };
  }

  async unclaim(events: readonly ClaimedEvent[]): Promise<void> {
    this.unclaimed.push(...events);
  }

  async release(events: readonly ClaimedEvent[]): Promise<void> {
    this.released.push(...events);
  }
}

/** A sender whose answers the test decides, one per event id; unanswered requests hang. */
class ScriptedSender {
  sent: Outgoing[] = [];
  constructor(private readonly answer: (outgoing: Outgoing) => Outcome | Promise<Outcome> | undefined) {}
  send(outgoing: Outgoing): Promise<Outcome> {
    this.sent.push(outgoing);
    const answer = this.answer(outgoing);
    return answer === undefined ? new Promise(() => undefined) : Promise.resolve(answer);
  }
}

const options = { endpoint: 'default', concurrency: 2, leaseMs: 60_000, retryDelaysMs: [1000, 2000], retryWriteMs: 10 };

/** One endpoint's dispatcher, with the fan-out that claims its new changes (as the service wires them). */
function delivering(
  store: MemoryStore,
  sender: ScriptedSender,
  more: Partial<DispatcherOptions> = {},
): { dispatcher: Dispatcher; fanout: Fanout } {
  let fanout!: Fanout;
  const dispatcher = new Dispatcher(store, sender, log, { ...options, ...more, onNewChangesFreed: () => fanout.changesFreed() });
  fanout = new Fanout(store, new Map([['default', dispatcher]]), log, { leaseMs: options.leaseMs, single: true });
  return { dispatcher, fanout };
}

describe('dispatcher decisions', () => {
  it('claims up to one batch beyond the free slots, and none while some wait and less than half a batch is free', () => {
    assert.equal(claimRoom(32, 0, 0), 64);
    assert.equal(claimRoom(32, 32, 0), 32);
    assert.equal(claimRoom(32, 32, 16), 16);
    assert.equal(claimRoom(32, 32, 17), 0);
    assert.equal(claimRoom(32, 32, 32), 0);
  });

  it('gives an event back unsent once it waited half its lease for a slot', () => {
    assert.equal(isStale(30_000, 60_000), false);
    assert.equal(isStale(30_001, 60_000), true);
  });

  it('makes a failed attempt pending until its delay, then failed when the delays are used up', () => {
    const now = 1_000_000;
    const delivered = resultOf(event(1), ok(), [1000], now, 0.5);
    assert.deepEqual([delivered.status, delivered.nextAttemptAt], ['delivered', null]);
    const first = resultOf(event(1, 'journal', 1), refused(), [1000], now, 0.5);
    assert.deepEqual([first.status, first.nextAttemptAt?.getTime(), first.errorKind], ['pending', now + 1000, 'connect']);
    const last = resultOf(event(1, 'outbox', 2), refused(), [1000], now, 0.5);
    assert.deepEqual([last.status, last.nextAttemptAt], ['failed', null]);
    const later = resultOf(event(1, 'outbox', 1), { ...refused(), retryAfterMs: 7000 }, [1000], now, 0.5);
    assert.equal(later.nextAttemptAt?.getTime(), now + 7000, "the receiver's Retry-After wins");
  });
});

describe('dispatcher', () => {
  it('sends new changes as they are claimed and records each result once, also after a failed write', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1), event(2), event(3)];
    store.failRecords = 1;
    const sender = new ScriptedSender((o) => (o.eventId === 'e2' ? refused() : ok()));
    const { dispatcher, fanout } = delivering(store, sender);
    assert.equal(await fanout.drainNew(), true);
    await waitFor(() => store.recorded.length === 3, { what: 'three results recorded' });
    assert.deepEqual(store.recorded.map((r) => [r.event.eventId, r.status]).sort(), [
      ['e1', 'delivered'],
      ['e2', 'pending'],
      ['e3', 'delivered'],
    ]);
    assert.deepEqual(fanout.stats, { changes: 3, events: 3, eventsOf: { default: 3 }, unmatched: 0, filtered: 0 });
    assert.deepEqual(dispatcher.stats, { delivered: 2, failedAttempts: 1, failedEvents: 0 });
    assert.equal(await dispatcher.stop(1000), true);
  });

  it('writes results that come close together with one statement, a full batch at once', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1), event(2), event(3), event(4), event(5)];
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(ok), { concurrency: 4 });
    await fanout.drainNew();
    await waitFor(() => store.recorded.length === 5, { what: 'five results recorded' });
    // Four results (a batch: the concurrency) went at once; the fifth waited for company a moment.
    assert.deepEqual(store.recordBatches, [4, 1]);
    assert.equal(await dispatcher.stop(1000), true);
  });

  it('at stop: writes at once the results that wait to be written with others', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1), event(2)];
    let stopped: Promise<boolean> | undefined;
    let recordedAtStop = -1;
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(ok), {
      concurrency: 4,
      // Stops as the second result comes, in the same tick: both wait to be written with others then.
      onResult: () => {
        if (dispatcher.stats.delivered < 2) return;
        recordedAtStop = store.recorded.length;
        stopped = dispatcher.stop(1000);
      },
    });
    await fanout.drainNew();
    await waitFor(() => stopped, { what: 'the stop' });
    assert.equal(await stopped, true);
    assert.equal(recordedAtStop, 0);
    assert.deepEqual(store.recordBatches, [2]);
  });

  it('first attempts still go out when moving the changes that must wait fails', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1)];
    store.queueError = new Error('outbox unavailable');
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(ok));
    await fanout.drainNew();
    await waitFor(() => store.recorded.length === 1, { what: 'the first attempt recorded' });
    assert.equal(store.recorded[0]!.status, 'delivered');
    await dispatcher.stop(1000);
  });

  it('a sender that throws becomes a failed attempt of kind internal, not a crash', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1)];
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(() => Promise.reject(new Error('bug'))));
    await fanout.drainNew();
    const [record] = await waitFor(() => store.recorded.length === 1 && store.recorded, { what: 'the result' });
    assert.deepEqual([record!.status, record!.errorKind, record!.error], ['pending', 'internal', 'internal: bug']);
    await dispatcher.stop(1000);
  });

  it('looks for new changes again by itself once first attempts left the journal', async () => {
    const store = new MemoryStore();
    store.freeNew = true;
    store.newEvents = [event(1)];
    let answerFirst!: (outcome: Outcome) => void;
    const first = new Promise<Outcome>((resolve) => (answerFirst = resolve));
    const { dispatcher, fanout } = delivering(store, new ScriptedSender((o) => (o.eventId === 'e1' ? first : ok())));
    await fanout.drainNew();
    // A later change of the order arrives while the first is in flight; no drainer will say so.
    store.newEvents = [event(2)];
    answerFirst(ok());
    await waitFor(() => store.recorded.length === 2, { what: 'the later change sent without a wake-up' });
    await dispatcher.stop(1000);
  });

  it('at stop: gives back what was claimed but not sent, and releases what is still in flight after the grace period', async () => {
    const store = new MemoryStore();
    store.newEvents = [event(1), event(2), event(3), event(4)];
    // Every request hangs: two in flight (concurrency 2), two waiting for a slot.
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(() => undefined));
    await fanout.drainNew();
    assert.equal(dispatcher.inFlightCount, 2);
    assert.equal(await dispatcher.stop(50), false);
    assert.deepEqual(store.unclaimed.map((e) => e.eventId).sort(), ['e3', 'e4']);
    assert.deepEqual(store.released.map((e) => e.eventId).sort(), ['e1', 'e2']);
    assert.equal(store.recorded.length, 0);
  });

  it('sends an event’s followers one after another, each once the one before is delivered', async () => {
    const store = new MemoryStore();
    const chain = (first: number, ...rest: number[]) => ({ ...event(first), followers: rest.map((n) => event(n)) });
    store.newEvents = [chain(1, 2, 3), chain(4, 5, 6)];
    const answers = new Map<string, (outcome: Outcome) => void>();
    const sender = new ScriptedSender((o) => new Promise((resolve) => answers.set(o.eventId, resolve)));
    const { dispatcher, fanout } = delivering(store, sender);
    await fanout.drainNew();
    assert.deepEqual(fanout.stats.events, 6);
    // One request per chain at a time; the next of a chain only once the one before was answered.
    await waitFor(() => answers.size === 2, { what: 'the heads sent' });
    assert.deepEqual(
      sender.sent.map((o) => o.eventId),
      ['e1', 'e4'],
    );
    answers.get('e1')!(ok());
    await waitFor(() => answers.has('e2'), { what: 'the follower sent' });
    assert.deepEqual(
      sender.sent.map((o) => o.eventId),
      ['e1', 'e4', 'e2'],
    );
    // A follower whose event ahead failed is not sent: it goes back, with the rest of the chain.
    answers.get('e4')!(refused());
    await waitFor(() => store.unclaimed.length === 2, { what: 'the rest of the chain given back' });
    assert.deepEqual(
      store.unclaimed.map((e) => e.eventId),
      ['e5', 'e6'],
    );
    answers.get('e2')!(ok());
    await waitFor(() => answers.has('e3'), { what: 'the last follower sent' });
    answers.get('e3')!(ok());
    await waitFor(() => store.recorded.length === 4, { what: 'four results' });
    assert.deepEqual(
      store.recorded.map((r) => [r.event.eventId, r.status]),
      [
        ['e1', 'delivered'],
        ['e4', 'pending'],
        ['e2', 'delivered'],
        ['e3', 'delivered'],
      ],
    );
    assert.deepEqual(
      sender.sent.map((o) => o.eventId),
      ['e1', 'e4', 'e2', 'e3'],
    );
    assert.equal(await dispatcher.stop(1000), true);
  });

  it('at stop: an event in flight is released and its followers given back unsent; a follower in flight goes back unsent too', async () => {
    const store = new MemoryStore();
    store.newEvents = [
      { ...event(1), followers: [event(2), event(3)] },
      { ...event(4), followers: [event(5), event(6)] },
    ];
    // e4 is answered, its follower e5 hangs; e1 hangs.
    const sender = new ScriptedSender((o) => (o.eventId === 'e4' ? ok() : undefined));
    const { dispatcher, fanout } = delivering(store, sender);
    await fanout.drainNew();
    await waitFor(() => sender.sent.some((o) => o.eventId === 'e5'), { what: 'the follower in flight' });
    assert.equal(await dispatcher.stop(50), false);
    // Released, e5 would be due at once, maybe ahead of e4 if e4's result were not written.
    assert.deepEqual(
      store.released.map((e) => e.eventId),
      ['e1'],
    );
    assert.deepEqual(store.unclaimed.map((e) => e.eventId).sort(), ['e2', 'e3', 'e5', 'e6']);
  });

  it('claims nothing once stopping, and gives back at once what a claim brings then', async () => {
    const store = new MemoryStore();
    const { dispatcher, fanout } = delivering(store, new ScriptedSender(ok));
    await dispatcher.stop(10);
    await fanout.stop(10);
    store.newEvents = [event(1)];
    assert.equal(dispatcher.room(), 0);
    await fanout.drainNew();
    assert.equal(store.claimNewCalls, 0);
  });
});
