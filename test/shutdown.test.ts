import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serviceConnections } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

describe('shutdown', () => {
  const stack = stacksClosedAfter();

  it('SIGTERM: stops claiming, finishes the request in flight, records it, exits 0', async () => {
    const s = await stack('sigterm_inflight');
    let answer: (() => void) | undefined;
    s.receiver.respond = (_req, res) => {
      answer = () => res.end('ok');
    };
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await waitFor(() => answer, { what: 'a request in flight' });
    s.service!.child.kill('SIGTERM');
    await s.service!.waitForLog('"msg":"stopping: no new claims; finishing requests in flight"');
    // A change committed now waits in the journal for the next start.
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    answer!();
    const exit = await s.service!.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    const rows = await outbox(s.db);
    assert.equal(rows[0]!.status, 'delivered');
    assert.equal(s.receiver.requests.length, 1);
    await waitFor(async () => (await serviceConnections(s.db)).length === 0, {
      what: 'every service connection closed, the wake lock with it',
    });
    // Nothing lost: the next start sends the second one.
    await s.start();
    await s.receiver.waitForCount(2);
  });

  it('SIGINT with a request that never ends: gives up after the grace period, hands the event back, exits 0', async () => {
    const s = await stack('sigint_hung', { webHook: { leaseTimeout: 'PT5M' } });
    s.receiver.respond = () => undefined; // never answers (requestTimeout is 30 s)
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await s.receiver.waitForCount(1);
    const started = Date.now();
    s.service!.child.kill('SIGINT');
    const exit = await s.service!.exited;
    const took = Date.now() - started;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took < 15_000, `stopped in ${took} ms`);
    assert.match(s.service!.output(), /stopped before every request finished; those events will be retried/);
    // Handed back: due now, not at the end of its five-minute lease.
    const [row] = await outbox(s.db);
    assert.equal(row!.status, 'pending');
    assert.ok(row!.next_attempt_at!.getTime() <= Date.now() + 1000, `due at ${row!.next_attempt_at!.toISOString()}`);
    s.receiver.respond = (_req, res) => res.end('ok');
    await s.start();
    const requests = await s.receiver.waitForCount(2);
    assert.equal(requests[1]!.headers['x-event-attempt'], '2');
    assert.equal(requests[1]!.headers['x-event-id'], requests[0]!.headers['x-event-id']);
  });

  it('a second signal exits at once', async () => {
    const s = await stack('second_signal');
    s.receiver.respond = () => undefined;
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await s.receiver.waitForCount(1);
    s.service!.child.kill('SIGTERM');
    await s.service!.waitForLog('"msg":"stopping: no new claims; finishing requests in flight"');
    const started = Date.now();
    s.service!.child.kill('SIGTERM');
    const exit = await s.service!.exited;
    assert.equal(exit.code, 1);
    assert.ok(Date.now() - started < 3000, 'exited at once');
    assert.match(s.service!.output(), /second SIGTERM: exiting at once/);
  });
});
