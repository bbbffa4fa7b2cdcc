// When to try a failed event again. Pure: no clock, no randomness of its own.

/** The longest a receiver's Retry-After can hold an event back. */
export const MAX_RETRY_AFTER_MS = 6 * 60 * 60 * 1000;
const JITTER = 0.1;

export type NextStep = { status: 'pending'; delayMs: number } | { status: 'failed' };

/**
 * After failed attempt number `attempt` (from 1): the delay before the next one, or `failed` when
 * every delay is used up. `random` in [0, 1) spreads retries by ±10% so that a receiver that comes
 * back is not hit by the whole backlog at once; a receiver's Retry-After (capped) replaces the delay.
 */
export function nextAttempt(attempt: number, delaysMs: readonly number[], retryAfterMs: number | null, random: number): NextStep {
  const delay = delaysMs[attempt - 1];
  if (delay === undefined) return { status: 'failed' };
  if (retryAfterMs !== null) return { status: 'pending', delayMs: Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS) };
  return { status: 'pending', delayMs: Math.round(delay * (1 - JITTER + 2 * JITTER * random)) };
}

/** Parses a Retry-After header (seconds or an HTTP date) relative to `now`; null when absent or bad. */
export function parseRetryAfter(header: string | undefined, now: number): number | null {
  if (!header) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
