// Claimed events an endpoint's dispatcher gives back: unsent ones (refused, stale, or claimed while
// stopping) are claimable again at once, their attempt not counted; at a stop, those still in flight
// are released, their attempt counted. An event's followers (later events of its order claimed with
// it, src/delivery/eventStore.ts) go back with it, and are sent only one after another.
import { describeDbError } from '../db.ts';
import type { Logger } from '../log.ts';
import { type ClaimedEvent, type EventStore, withFollowers } from './eventStore.ts';

export class GiveBack {
  private readonly running = new Set<Promise<void>>();
  /** Events sent as followers, by id, while claimed or in flight. */
  private readonly following = new Set<string>();

  constructor(
    private readonly store: Pick<EventStore, 'unclaim' | 'release'>,
    private readonly log: Logger,
  ) {}

  /** Gives back unsent events, with their followers. */
  unsent(events: readonly ClaimedEvent[]): Promise<void> {
    for (const e of events) this.following.delete(e.eventId);
    const all = withFollowers(events);
    if (all.length === 0) return Promise.resolve();
    const done = this.store
      .unclaim(all)
      .catch((error) =>
        this.log.warn(
          { error: describeDbError(error), events: all.length },
          'giving back unsent events failed; they are claimed again when their lease runs out',
        ),
      )
      .finally(() => this.running.delete(done));
    this.running.add(done);
    return done;
  }

  /**
   * After an event's result: the next of its followers, to send now (the rest its followers), once
   * it was delivered; otherwise none may go ahead of it, and all go back.
   */
  next(event: ClaimedEvent, delivered: boolean): ClaimedEvent | undefined {
    this.following.delete(event.eventId);
    const [next, ...rest] = event.followers ?? [];
    if (!next) return undefined;
    if (!delivered) {
      void this.unsent([{ ...next, followers: rest }]);
      return undefined;
    }
    this.following.add(next.eventId);
    return { ...next, followers: rest };
  }

  /** Gives-back under way. */
  settled(): Promise<unknown> {
    return Promise.all(this.running);
  }

  /**
   * At a stop, events still in flight: released, due again at once, their attempt counted. Their
   * followers go back unsent, behind them; so does an event sent as a follower: released, it would
   * be due at once, ahead of the one before it if that one's result is not written (its attempt is
   * not counted: it is sent again as it was).
   */
  async unfinished(events: readonly ClaimedEvent[]): Promise<void> {
    const followers = events.filter((e) => this.following.has(e.eventId));
    const heads = events.filter((e) => !this.following.has(e.eventId));
    await this.store
      .release(heads)
      .then(() => this.unsent([...followers, ...heads.flatMap((e) => e.followers ?? [])]))
      .catch((error) =>
        this.log.warn({ error: describeDbError(error) }, 'releasing unfinished events failed; they are retried when their lease runs out'),
      );
  }
}
