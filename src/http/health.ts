// What /readyz answers: ready when the database answers and the LISTEN connection is subscribed.
// Webhooks disabled is a state the operator chose, not a fault: ready (200), saying so, so that an
// orchestrator neither restarts the process nor holds a rollout back for it.
import { describeDbError } from '../db.ts';
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
    if (!parts.enabled) {
      return { ready: true, reason: 'webhooks are disabled (webHook.enabled is false): nothing is sent, changes wait in the journal' };
    }
    const failure = await ping();
    if (failure !== undefined) return { ready: false, reason: `database unreachable: ${failure}` };
    if (!parts.listening()) return { ready: false, reason: 'listener not subscribed: the LISTEN connection is down, reconnecting' };
    return { ready: true, reason: 'database connected, listener subscribed' };
  };
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
