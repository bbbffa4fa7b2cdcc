// The circuit breaker's decisions (src/delivery/breaker.ts), without a database: which failures
// open it, how the probe interval grows, what closes it, and which attempts are free.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  afterOutcome,
  afterOutcomes,
  type BreakerOutcome,
  type BreakerState,
  isFreeAttempt,
  isUnwell,
  mayChange,
  probeDue,
  UP,
} from '../src/delivery/breaker.ts';
import { resultOf } from '../src/delivery/results.ts';
import type { ClaimedEvent } from '../src/delivery/eventStore.ts';
import type { FailureKind } from '../src/delivery/failure.ts';

const config = { failures: 3, probeIntervalMs: 10_000, maxProbeIntervalMs: 35_000 };
const now = new Date('2026-12-07T12:00:00Z');
const at = (ms: number) => new Date(now.getTime() + ms);
const fail = (errorKind: FailureKind, httpStatus: number | null = null, probe = false): BreakerOutcome => ({
  ok: false,
  errorKind,
  httpStatus,
  probe,
});
const ok = (probe = false): BreakerOutcome => ({ ok: true, errorKind: null, httpStatus: 200, probe });
const down = (s: BreakerState) => s.state === 'down';

describe('circuit breaker', () => {
  it('counts connect, timeout, reset, dns, tls, 5xx, 408 and 429 as unwell; other 4xx, redirects and our faults not', () => {
    for (const kind of ['connect', 'timeout', 'reset', 'dns', 'tls'] as const) assert.ok(isUnwell(fail(kind)), kind);
    for (const status of [500, 502, 503, 504, 408, 429]) assert.ok(isUnwell(fail('http_status', status)), String(status));
    for (const status of [400, 401, 403, 404, 409, 410, 422]) assert.ok(!isUnwell(fail('http_status', status)), String(status));
    assert.ok(!isUnwell(fail('redirect', 301)));
    assert.ok(!isUnwell(fail('internal')));
    assert.ok(!isUnwell(ok()));
  });

  it('opens after `failures` unwell failures in a row, with the first probe one interval later', () => {
    const two = afterOutcomes(UP, [fail('connect'), fail('http_status', 503)], config, now);
    assert.equal(two.state, 'up');
    assert.equal(two.failures, 2);
    const three = afterOutcome(two, fail('timeout'), config, now);
    assert.deepEqual(three, { state: 'down', failures: 3, openedAt: now, nextProbeAt: at(10_000), probeIntervalMs: 10_000 });
    assert.ok(!probeDue(three, at(9_999)));
    assert.ok(probeDue(three, at(10_000)));
  });

  it('a success between resets the count: it takes `failures` in a row', () => {
    const s = afterOutcomes(UP, [fail('connect'), fail('connect'), ok(), fail('connect'), fail('connect')], config, now);
    assert.equal(s.state, 'up');
    assert.equal(s.failures, 2);
  });

  it('a 4xx other than 408/429 never opens it, however many', () => {
    const s = afterOutcomes(
      UP,
      Array.from({ length: 50 }, () => fail('http_status', 400)),
      config,
      now,
    );
    assert.deepEqual(s, UP);
    // Nor does it break a run of unwell failures: it is the event's problem, not the receiver's.
    const run = afterOutcomes(UP, [fail('connect'), fail('http_status', 404), fail('connect'), fail('connect')], config, now);
    assert.ok(down(run));
  });

  it('a failed probe doubles the interval up to maxProbeInterval; failures that are not probes leave it', () => {
    let s = afterOutcomes(UP, [fail('connect'), fail('connect'), fail('connect')], config, now);
    s = afterOutcome(s, fail('connect'), config, at(1000)); // in flight when it opened
    assert.equal(s.probeIntervalMs, 10_000);
    assert.deepEqual(s.nextProbeAt, at(10_000));
    const intervals: number[] = [];
    for (let i = 0; i < 4; i++) {
      s = afterOutcome(s, fail('http_status', 503, true), config, at(100_000 * (i + 1)));
      intervals.push(s.probeIntervalMs!);
      assert.deepEqual(s.nextProbeAt, at(100_000 * (i + 1) + s.probeIntervalMs!));
    }
    assert.deepEqual(intervals, [20_000, 35_000, 35_000, 35_000]);
    assert.equal(s.state, 'down');
  });

  it('closes on a probe that succeeds, or that the receiver answers (a 4xx), but not on a fault of ours', () => {
    const open = afterOutcomes(UP, [fail('reset'), fail('reset'), fail('reset')], config, now);
    assert.deepEqual(afterOutcome(open, ok(true), config, at(10_000)), UP);
    assert.deepEqual(afterOutcome(open, fail('http_status', 422, true), config, at(10_000)), UP);
    const internal = afterOutcome(open, fail('internal', null, true), config, at(10_000));
    assert.equal(internal.state, 'down');
    assert.deepEqual(internal.nextProbeAt, at(20_000));
  });

  it('needs no write for a healthy endpoint’s successes', () => {
    assert.ok(!mayChange(UP, [ok(), ok()]));
    assert.ok(!mayChange(UP, [fail('http_status', 400)]));
    assert.ok(mayChange(UP, [fail('connect')]));
    assert.ok(mayChange({ ...UP, failures: 2 }, [ok()]));
  });

  it('a probe that finds the endpoint still down is free: its event stays due with its retries untouched', () => {
    assert.ok(isFreeAttempt(fail('connect', null, true)));
    assert.ok(!isFreeAttempt(fail('connect')));
    assert.ok(!isFreeAttempt(fail('http_status', 400, true)));
    const event: ClaimedEvent = {
      source: 'outbox',
      endpoint: 'default',
      id: '1',
      eventId: 'e',
      orderId: 'o',
      eventType: 'OrderCreated',
      body: '{}',
      attempt: 9,
      counted: 2,
    };
    const outcome = {
      ok: false,
      startedAt: now,
      durationMs: 1,
      httpStatus: 503,
      error: 'http: 503',
      errorKind: 'http_status' as const,
      retryAfterMs: null,
    };
    const probe = resultOf(event, outcome, [1000, 1000], now.getTime(), 0.5, true);
    assert.equal(probe.status, 'pending');
    assert.equal(probe.free, true);
    assert.deepEqual(probe.nextAttemptAt, now);
    // Not a probe: its counted attempts (2, not 9) pick the retry delay, and the third fails it.
    assert.equal(resultOf(event, outcome, [1000, 1000], now.getTime(), 0.5).status, 'pending');
    assert.equal(resultOf({ ...event, counted: 3 }, outcome, [1000, 1000], now.getTime(), 0.5).status, 'failed');
  });
});
