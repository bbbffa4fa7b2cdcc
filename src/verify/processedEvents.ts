// A receiver gets an event more than once: a retry after an answer that was lost, an operator's
// replay. Keyed by X-Event-Id, the same on each, a record of what was processed makes the work once.

/** What `claim` answers: process it; it was processed; another delivery of it is being processed. */
export type Claim = 'claimed' | 'duplicate' | 'busy';

/**
 * The events a receiver has processed, by event id. Any implementation keeps this contract:
 * - `claim(id)` is atomic. `duplicate` when `complete(id)` was called and is still remembered;
 *   `busy` while another claim of the id holds (neither completed nor released, its lease not
 *   over); otherwise it records a claim and answers `claimed`, and only then may the caller work.
 * - `complete(id)` once the work is done: claims answer `duplicate` for as long as the store
 *   remembers, which should outlast the sender's retries (about a day with the service's
 *   default `retry.delays`).
 * - `release(id)` when the work failed: the next delivery, the service's retry, may claim it.
 * - A claim whose holder died without either is claimable again once its lease is over.
 * A store in the receiver's own database does best to insert the id in the same transaction as the
 * work (`INSERT … ON CONFLICT DO NOTHING`, the work only when a row was inserted): then the work
 * and its record cannot part.
 */
export interface ProcessedEvents {
  claim(eventId: string): Claim | Promise<Claim>;
  complete(eventId: string): void | Promise<void>;
  release(eventId: string): void | Promise<void>;
}

export interface MemoryProcessedEventsOptions {
  /** How long a completed id is remembered (default 48 hours). */
  rememberMs?: number;
  /** How long a claim holds without complete or release (default 5 minutes). */
  leaseMs?: number;
  /** The most ids kept; past it, expired ones go first, then the oldest completed (default 100,000). */
  maxEntries?: number;
  /** Milliseconds now; for tests. */
  clock?: () => number;
}

interface Entry {
  state: 'claimed' | 'done';
  until: number;
}

/** ProcessedEvents in this process's memory: for one receiver process; a restart forgets. */
export class MemoryProcessedEvents implements ProcessedEvents {
  readonly #entries = new Map<string, Entry>();
  readonly #rememberMs: number;
  readonly #leaseMs: number;
  readonly #maxEntries: number;
  readonly #clock: () => number;

  constructor({
    rememberMs = 48 * 3600_000,
    leaseMs = 5 * 60_000,
    maxEntries = 100_000,
    clock = Date.now,
  }: MemoryProcessedEventsOptions = {}) {
    this.#rememberMs = rememberMs;
    this.#leaseMs = leaseMs;
    this.#maxEntries = maxEntries;
    this.#clock = clock;
  }

  get size(): number {
    return this.#entries.size;
  }

  claim(eventId: string): Claim {
    const now = this.#clock();
    const entry = this.#entries.get(eventId);
    if (entry && entry.until > now) return entry.state === 'done' ? 'duplicate' : 'busy';
    this.#set(eventId, { state: 'claimed', until: now + this.#leaseMs });
    if (this.#entries.size > this.#maxEntries) this.#prune(now);
    return 'claimed';
  }

  complete(eventId: string): void {
    this.#set(eventId, { state: 'done', until: this.#clock() + this.#rememberMs });
  }

  release(eventId: string): void {
    if (this.#entries.get(eventId)?.state === 'claimed') this.#entries.delete(eventId);
  }

  // Re-inserted, so that the map's order is the order of the last change: oldest first.
  #set(eventId: string, entry: Entry): void {
    this.#entries.delete(eventId);
    this.#entries.set(eventId, entry);
  }

  // Down to 90% of the bound at once, so that a full store does not sweep on every claim.
  #prune(now: number): void {
    const target = Math.floor(this.#maxEntries * 0.9);
    for (const [id, entry] of this.#entries) if (entry.until <= now) this.#entries.delete(id);
    for (const [id, entry] of this.#entries) {
      if (this.#entries.size <= target) break;
      if (entry.state === 'done') this.#entries.delete(id);
    }
  }
}

export type Processed<T> = { outcome: 'processed'; result: T } | { outcome: 'duplicate' } | { outcome: 'busy' };

/**
 * Runs `work` at most once per event id: claim, work, complete; when `work` throws, the claim is
 * released and the error thrown on. Answer `processed` and `duplicate` with a 2xx, `busy` with a
 * 409 (the service tries again later), an error with a 5xx.
 */
export async function processOnce<T>(store: ProcessedEvents, eventId: string, work: () => T | Promise<T>): Promise<Processed<T>> {
  const claim = await store.claim(eventId);
  if (claim !== 'claimed') return { outcome: claim };
  let result: T;
  try {
    result = await work();
  } catch (error) {
    await store.release(eventId);
    throw error;
  }
  await store.complete(eventId);
  return { outcome: 'processed', result };
}
