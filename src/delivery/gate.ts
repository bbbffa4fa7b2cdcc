// What the dispatcher asks of an endpoint's state (up, down or paused) before it claims and sends,
// and tells it after each attempt. The state is shared by every instance (src/outbox/endpointState.ts
// keeps it in the database); the decisions are the circuit breaker's (breaker.ts).
import type { BreakerOutcome } from './breaker.ts';

export type EndpointStatus = 'up' | 'down' | 'paused';

export const ENDPOINT_STATUSES: readonly EndpointStatus[] = ['up', 'down', 'paused'];

export interface EndpointGate {
  /** This instance's name in probe claims. */
  readonly instance: string;
  /** As last read or written: events are claimed and sent only while `up`. */
  status(endpoint: string): EndpointStatus;
  /** Down, and its probe is due and not held by another instance (as far as this instance knows). */
  probeDue(endpoint: string): boolean;
  /** Takes the endpoint's probe for this instance: one for all instances. False when another has it or it is not due. */
  claimProbe(endpoint: string, leaseMs: number): Promise<boolean>;
  /** The probe taken was not sent (no event to send, or it was given back): another may take it. */
  releaseProbe(endpoint: string): Promise<void>;
  /** An attempt's outcome, for the breaker; written in the background, never delaying a send. */
  observe(endpoint: string, outcome: BreakerOutcome): void;
}

/** A gate for when there is none (tests of the dispatcher alone): always up, nothing recorded. */
export const ALWAYS_UP: EndpointGate = {
  instance: 'none',
  status: () => 'up',
  probeDue: () => false,
  claimProbe: async () => false,
  releaseProbe: async () => undefined,
  observe: () => undefined,
};
