// Claims new changes from the journal for every endpoint at once (the drainer's ChangeSource): each
// change becomes one event per endpoint whose `events` accept it. The changes of a quiet order, each
// of one event, are sent at once, one after another, by their endpoint's dispatcher while it has room;
// everything else goes to the outbox, from where each endpoint's dispatcher claims its own. With one
// endpoint the claim is sized by its room, as the journal is where a backlog waits; with several it
// is not, so that no endpoint's slow requests hold back the others' changes.
import { describeDbError } from '../db.ts';
import { ClaimStreaks } from './claimFailures.ts';
import type { Logger } from '../log.ts';
import type { Dispatcher } from './dispatcher.ts';
import { type ChangeStore, withFollowers } from './eventStore.ts';

export interface FanoutStats {
  changes: number;
  events: number;
  /** Events made, by endpoint. */
  eventsOf: Record<string, number>;
  unmatched: number;
  filtered: number;
}

export class Fanout {
  readonly stats: FanoutStats = { changes: 0, events: 0, eventsOf: {}, unmatched: 0, filtered: 0 };
  /** Claims of new changes that failed in a row (/readyz reads this). */
  readonly claims = new ClaimStreaks();
  private draining: Promise<boolean> | undefined;
  private drainAgain = false;
  private stopping = false;

  constructor(
    private readonly store: ChangeStore,
    /** The dispatchers of the enabled endpoints, by name. */
    private readonly dispatchers: ReadonlyMap<string, Pick<Dispatcher, 'room' | 'accept' | 'lookAgain'>>,
    private readonly log: Logger,
    private readonly options: { leaseMs: number /** Every configured endpoint (enabled or not) is one. */; single: boolean },
  ) {}

  /**
   * Claims new changes until the journal has nothing more for us now (or, with one endpoint, it has
   * no room: the changes wait where they are). Resolves with whether any were claimed; a call while
   * a drain runs makes that drain go round once more and shares its result.
   */
  drainNew(): Promise<boolean> {
    if (this.draining) {
      this.drainAgain = true;
      return this.draining;
    }
    this.draining = (async () => {
      let worked = false;
      do {
        this.drainAgain = false;
        if (await this.claimBatches()) worked = true;
      } while (this.drainAgain && !this.stopping);
      return worked;
    })().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** For a dispatcher's results: later changes of their orders may be claimable now. */
  readonly changesFreed = (): void => {
    void this.drainNew().catch((error) =>
      this.log.warn({ error: describeDbError(error) }, 'claiming changes from the journal failed; will retry'),
    );
  };

  private async claimBatches(): Promise<boolean> {
    let worked = false;
    while (!this.stopping) {
      const room = new Map([...this.dispatchers].map(([name, d]) => [name, d.room()]));
      const only = this.options.single ? [...room.values()][0] : undefined;
      const limit = Math.min(only ?? this.store.batchSize, this.store.batchSize);
      if (limit <= 0) return true;
      const claimed = await this.store.claimNew(limit, this.options.leaseMs, room).catch((error: unknown) => {
        this.claims.failed('new', describeDbError(error));
        throw error;
      });
      this.claims.succeeded('new');
      if (claimed.changes === 0) return worked;
      worked = true;
      this.stats.changes += claimed.changes;
      this.stats.unmatched += claimed.unmatched;
      this.stats.filtered += claimed.filtered;
      this.stats.events += withFollowers(claimed.send).length + claimed.queued;
      for (const [name, n] of Object.entries(claimed.made)) this.stats.eventsOf[name] = (this.stats.eventsOf[name] ?? 0) + n;
      if (claimed.unmatched > 0) {
        this.log.debug({ changes: claimed.unmatched }, 'state changes with no matching transition rule: no event sent');
      }
      const byEndpoint = new Map<string, typeof claimed.send>();
      for (const event of claimed.send) byEndpoint.set(event.endpoint, [...(byEndpoint.get(event.endpoint) ?? []), event]);
      for (const [name, events] of byEndpoint) this.dispatchers.get(name)?.accept(events);
      for (const name of new Set(claimed.queuedFor)) this.dispatchers.get(name)?.lookAgain();
      if (claimed.queueError !== undefined) {
        this.log.warn(
          { error: describeDbError(claimed.queueError) },
          'moving changes to the outbox failed; they are claimed again when their lease ends',
        );
      }
      // A short batch means the journal's front is claimed; the next wake-up picks up what arrives meanwhile.
      if (claimed.changes < limit) return worked;
    }
    return worked;
  }

  /**
   * For a lone endpoint that is down with nothing due in the outbox: moves the journal's first change
   * to the outbox unsent (no room: nothing is sent from here), so that its probe has an event.
   */
  async moveForProbe(endpoint: string): Promise<boolean> {
    if (this.stopping) return false;
    const claimed = await this.store.claimNew(1, this.options.leaseMs, new Map([[endpoint, 0]]));
    if (claimed.queueError !== undefined) throw claimed.queueError;
    return claimed.queued > 0;
  }

  /** Stops claiming; resolves once a claim under way has ended, or after `graceMs` (the database may be away). */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.draining?.catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      }),
    ]);
    clearTimeout(timer);
  }
}
