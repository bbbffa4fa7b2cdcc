// How claims are going: failures in a row and since when, per kind of claim (new changes from the
// journal, due events from the outbox). The dispatcher keeps it; the health model (src/health/)
// reads it for /readyz and the page, so the dispatcher needs to know nothing of either.

export type ClaimKind = 'new' | 'due';

/** The longest run of failed claims going on now, of either kind (none: 0, null, null). */
export interface ClaimFailures {
  /** Claims of that kind that failed in a row, since the last one that worked. */
  inARow: number;
  /** When the first of them failed (epoch ms). */
  since: number | null;
  /** The last one's error, one line. */
  error: string | null;
}

export const NO_CLAIM_FAILURES: ClaimFailures = { inARow: 0, since: null, error: null };

export class ClaimStreaks {
  // Per kind: a claim of new changes that works says nothing about claims of due events, which may
  // still fail (a grant missing on one table, a lock on the other).
  private readonly streaks = new Map<ClaimKind, ClaimFailures>();

  failed(kind: ClaimKind, error: string, now = Date.now()): void {
    const streak = this.streaks.get(kind);
    this.streaks.set(kind, { inARow: (streak?.inARow ?? 0) + 1, since: streak?.since ?? now, error });
  }

  succeeded(kind: ClaimKind): void {
    this.streaks.delete(kind);
  }

  /** The streak that began first. */
  get current(): ClaimFailures {
    let oldest: ClaimFailures = NO_CLAIM_FAILURES;
    for (const streak of this.streaks.values()) if (oldest.since === null || streak.since! < oldest.since) oldest = streak;
    return oldest;
  }
}
