// The circuit breaker's decisions, per endpoint. Pure: a state, an attempt's outcome and the time
// give the next state; where the state is kept (the endpoint_state table, shared by every instance)
// is not its business. A receiver that fails with a kind that says it is unwell, `failures` times in
// a row, is down: nothing is sent to it but one probe (a real event) per interval, the interval
// doubling up to a maximum; the first answer that is not unwell brings it up again.
import type { WebHookConfig } from '../config/config.ts';
import type { FailureKind } from './failure.ts';

export interface BreakerConfig {
  /** Unwell failures in a row that open the breaker. */
  failures: number;
  probeIntervalMs: number;
  maxProbeIntervalMs: number;
}

/** The config's `circuitBreaker` as settings; `false` stays off. */
export function breakerSettings(config: WebHookConfig['circuitBreaker']): BreakerConfig | false {
  if (config === false) return false;
  return { failures: config.failures, probeIntervalMs: config.probeInterval, maxProbeIntervalMs: config.maxProbeInterval };
}

export interface BreakerState {
  state: 'up' | 'down';
  /** Unwell failures since the last success. */
  failures: number;
  openedAt: Date | null;
  /** While down: when the next probe may go. */
  nextProbeAt: Date | null;
  probeIntervalMs: number | null;
}

/** What the breaker needs to know of an attempt. */
export interface BreakerOutcome {
  ok: boolean;
  errorKind: FailureKind | null;
  httpStatus: number | null;
  /** The one attempt let through while the endpoint is down. */
  probe: boolean;
}

export const UP: BreakerState = { state: 'up', failures: 0, openedAt: null, nextProbeAt: null, probeIntervalMs: null };

const UNWELL_KINDS: ReadonlySet<FailureKind> = new Set(['connect', 'timeout', 'reset', 'dns', 'tls']);

/**
 * Whether a failure says the receiver is unwell rather than that this event is refused: no
 * connection or answer, a 5xx, a 408 or a 429. Any other 4xx is the event's own problem.
 */
export function isUnwell(outcome: Pick<BreakerOutcome, 'ok' | 'errorKind' | 'httpStatus'>): boolean {
  if (outcome.ok || outcome.errorKind === null) return false;
  if (UNWELL_KINDS.has(outcome.errorKind)) return true;
  if (outcome.errorKind !== 'http_status' || outcome.httpStatus === null) return false;
  return outcome.httpStatus >= 500 || outcome.httpStatus === 408 || outcome.httpStatus === 429;
}

/** The state after one attempt's outcome at `now`. */
export function afterOutcome(state: BreakerState, outcome: BreakerOutcome, config: BreakerConfig, now: Date): BreakerState {
  if (outcome.ok) return UP;
  if (isUnwell(outcome)) {
    const failures = state.failures + 1;
    if (state.state === 'up') {
      if (failures < config.failures) return { ...state, failures };
      return {
        state: 'down',
        failures,
        openedAt: now,
        nextProbeAt: new Date(now.getTime() + config.probeIntervalMs),
        probeIntervalMs: config.probeIntervalMs,
      };
    }
    if (!outcome.probe) return { ...state, failures };
    const interval = Math.min(2 * (state.probeIntervalMs ?? config.probeIntervalMs), config.maxProbeIntervalMs);
    return { ...state, failures, nextProbeAt: new Date(now.getTime() + interval), probeIntervalMs: interval };
  }
  // Not unwell: a 4xx, a redirect, a broken answer (the receiver did answer), or a fault of ours.
  if (state.state === 'down' && outcome.probe) {
    if (outcome.errorKind === 'internal') {
      // Says nothing of the receiver: probe again after the same interval.
      return { ...state, nextProbeAt: new Date(now.getTime() + (state.probeIntervalMs ?? config.probeIntervalMs)) };
    }
    return UP;
  }
  return state;
}

/** The state after several outcomes, in the order they came. */
export function afterOutcomes(state: BreakerState, outcomes: readonly BreakerOutcome[], config: BreakerConfig, now: Date): BreakerState {
  return outcomes.reduce((s, outcome) => afterOutcome(s, outcome, config, now), state);
}

/** Whether outcomes can change a state: a healthy endpoint's successes need no write. */
export function mayChange(state: BreakerState, outcomes: readonly BreakerOutcome[]): boolean {
  return outcomes.some((o) => o.probe || isUnwell(o) || (o.ok && (state.failures > 0 || state.state === 'down')));
}

/** Whether a probe may be sent now (the endpoint is down and its next probe is due). */
export function probeDue(state: BreakerState, now: Date): boolean {
  return state.state === 'down' && state.nextProbeAt !== null && state.nextProbeAt.getTime() <= now.getTime();
}

/** Whether a probe's failure is free: it does not use up the event's retries (the endpoint is down, not the event). */
export function isFreeAttempt(outcome: BreakerOutcome): boolean {
  return outcome.probe && isUnwell(outcome);
}
