// What /readyz answers: the health model's runtime problems (src/health/model.ts). Not ready while
// the database does not answer, the LISTEN connection is down, or claims have failed for a while
// (CLAIMS_FAILING_IN_A_ROW in a row, the first CLAIMS_FAILING_FOR_MS ago). Webhooks disabled is a
// state the operator chose, not a fault: ready (200), saying so, so that an orchestrator neither
// restarts the process nor holds a rollout back for it.
import { describeDbError } from '../db.ts';
import type { ClaimFailures } from '../delivery/claimFailures.ts';
import { assess, type Facts, readiness as judge } from '../health/model.ts';
import type { Readiness } from './server.ts';

/** How long the database may take to answer a readiness check. */
export const PING_TIMEOUT_MS = 2000;

export interface ReadinessParts {
  enabled: boolean;
  stopping(): boolean;
  /** A trivial query. */
  ping(): Promise<unknown>;
  /** Whether LISTEN is in place. */
  listening(): boolean;
  /** The dispatcher's failed claims in a row. */
  claims(): ClaimFailures;
}

export function readiness(parts: ReadinessParts): () => Promise<Readiness> {
  let pinging: Promise<string | undefined> | undefined;
  // Concurrent probes share one query.
  const ping = () => {
    pinging ??= withTimeout(parts.ping(), PING_TIMEOUT_MS)
      .then(
        () => undefined,
        (error: unknown) => describeDbError(error),
      )
      .finally(() => {
        pinging = undefined;
      });
    return pinging;
  };
  return async () => {
    if (parts.stopping()) return { ready: false, reason: 'stopping' };
    // Idle: nothing runs that could fail, and the database is not asked.
    const facts: Facts = parts.enabled
      ? { enabled: true, database: (await ping()) ?? null, listening: parts.listening(), claims: parts.claims(), now: Date.now() }
      : { enabled: false };
    return judge(assess(facts), 'database connected, listener subscribed, claims working');
  };
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
