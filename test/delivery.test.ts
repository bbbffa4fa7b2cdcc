import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { verifySignature } from '../src/delivery/sign.ts';
import { runUntil } from './helpers/cli.ts';
import { insertOrder, serviceConnections } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

describe('delivery', () => {
  const stack = stacksClosedAfter();

  it('sends each of the seven event types, signed, with the key, the exact body, and an outbox trail', async () => {
    const s = await stack('seven', { webHook: { key: 'Install 1&2', secret: 'HeaderSecret' } });
    const { db, receiver } = s;
    const ids: string[] = [];
    for (const state of ['accepted', 'signed', 'rejected', 'canceled', 'expired']) {
      const id = await insertOrder(db);
      await db.query('UPDATE orders SET state = $2 WHERE id = $1', [id, state]);
      ids.push(id);
    }
    await db.query("UPDATE orders SET due_date = '2027-05-01' WHERE id = $1", [ids[0]]);
    const requests = await receiver.waitForCount(11);
    const rows = await waitFor(
      async () => {
        const r = await outbox(db);
        return r.length === 11 && r.every((row) => row.status === 'delivered') && r;
      },
      { what: 'all outbox rows delivered' },
    );

    const types = requests.map((r) => JSON.parse(r.body).eventType).sort();
    assert.deepEqual(types, [
      'OrderAccepted',
      'OrderCanceled',
      'OrderCreated',
      'OrderCreated',
      'OrderCreated',
      'OrderCreated',
      'OrderCreated',
      'OrderDueDateUpdated',
      'OrderExpired',
      'OrderRejected',
      'OrderSigned',
    ]);
    for (const request of requests) {
      assert.equal(request.url, '/automation/?key=Install%201%262');
      assert.equal(request.headers['content-type'], 'application/json');
      assert.ok(verifySignature('HeaderSecret', request.body, request.headers['x-signature'] as string), 'signature verifies');
      const row = rows.find((r) => r.event_id === request.headers['x-event-id']);
      assert.ok(row, 'X-Event-Id is the outbox event id');
      assert.equal(request.body, `{"orderId":"${row.order_id}","eventType":"${row.event_type}"}`);
      assert.equal(request.body, row.body);
      assert.equal(request.headers['x-event-attempt'], '1');
      assert.equal(row.attempts, 1);
      assert.equal(row.last_status, 200);
      assert.ok(row.delivered_at instanceof Date);
      assert.equal(row.next_attempt_at, null, 'nothing more is due');
    }
    // Delivered at the first try: the outbox row is the whole record, the body made from it, and the
    // attempts view shows the attempt from it (migration 11).
    const stored = await db.query('SELECT body FROM order_webhooks.outbox WHERE body IS NOT NULL');
    assert.equal(stored.length, 0, 'no body stored: each is the one event_body() makes');
    assert.equal((await db.query('SELECT 1 FROM order_webhooks.outbox_attempt')).length, 0, 'no attempt row of its own');
    const attempts = await db.query<{ event_id: string; attempt: number; http_status: number; error: string | null; started_at: Date }>(
      'SELECT event_id::text, attempt, http_status, error, started_at, outcome FROM order_webhooks.attempts ORDER BY outbox_id',
    );
    assert.equal(attempts.length, 11);
    assert.ok(attempts.every((a) => a.attempt === 1 && a.http_status === 200 && a.error === null));
    for (const a of attempts) assert.equal(a.started_at.getTime(), rows.find((r) => r.event_id === a.event_id)!.delivered_at!.getTime());
    // Events of one order arrive in the order of its changes.
    const first = requests.filter((r) => JSON.parse(r.body).orderId === ids[0]).map((r) => JSON.parse(r.body).eventType);
    assert.deepEqual(first, ['OrderCreated', 'OrderAccepted', 'OrderDueDateUpdated']);
  });

  it('delivers changes made while it was stopped, and nothing for other columns or rolled-back work', async () => {
    const s = await stack('stopped', { startNow: false });
    const { db, receiver } = s;
    const id = await insertOrder(db);
    await db.query("UPDATE orders SET note = 'not an event' WHERE id = $1", [id]);
    await db.query('BEGIN');
    await db.query("UPDATE orders SET state = 'signed' WHERE id = $1", [id]).finally(() => db.query('ROLLBACK'));
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [id]);
    await s.start();
    await receiver.waitForCount(2);
    await waitFor(
      async () => {
        const r = await outbox(s.db);
        return r.length === 2 && r.every((row) => row.status === 'delivered');
      },
      { what: 'delivered' },
    );
    assert.deepEqual(
      receiver.requests.map((r) => JSON.parse(r.body).eventType),
      ['OrderCreated', 'OrderAccepted'],
    );
    assert.equal((await outbox(db)).length, 2);
  });

  it('one UPDATE touching 1,000 orders gives 1,000 webhooks', async () => {
    const s = await stack('thousand', { webHook: { events: ['OrderSigned'] } });
    await s.db.query("INSERT INTO orders (state) SELECT 'created' FROM generate_series(1, 1000)");
    await s.db.query("UPDATE orders SET state = 'signed'");
    await s.receiver.waitForCount(1000, 60_000);
    const rows = await waitFor(
      async () => {
        const r = await outbox(s.db);
        return r.length === 1000 && r.every((row) => row.status === 'delivered') && r;
      },
      { what: '1,000 delivered', timeoutMs: 60_000 },
    );
    // webHook.events left the 1,000 OrderCreated out.
    assert.ok(rows.every((r) => r.event_type === 'OrderSigned'));
    assert.equal(new Set(s.receiver.requests.map((r) => JSON.parse(r.body).orderId)).size, 1000);
  });

  it('records a failed attempt with its reason and tries again: 500, redirect, timeout, refused', async () => {
    const s = await stack('failures', { webHook: { requestTimeout: 'PT0.5S', retry: { delays: ['PT0.2S'] } } });
    const { db, receiver } = s;
    const answers: ((res: import('node:http').ServerResponse) => void)[] = [
      (res) => {
        res.statusCode = 500;
        res.end('boom');
      },
      (res) => {
        res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere' });
        res.end();
      },
      () => undefined, // never answers
    ];
    receiver.respond = (_req, res) => (answers.shift() ?? ((r) => r.end('ok')))(res);
    await db.query("INSERT INTO orders (state) VALUES ('created')");
    await db.query("INSERT INTO orders (state) VALUES ('created')");
    await db.query("INSERT INTO orders (state) VALUES ('created')");
    const rows = await waitFor(
      async () => {
        const r = await outbox(db);
        return r.length === 3 && r.every((row) => row.status !== 'pending') && r;
      },
      { what: 'three events settled' },
    );
    const attempts = await db.query<{ http_status: number | null; error: string | null }>(
      'SELECT http_status, error FROM order_webhooks.outbox_attempt ORDER BY id',
    );
    const errors = attempts
      .map((a) => a.error)
      .filter(Boolean)
      .join('\n');
    assert.match(errors, /http: 500 Internal Server Error/);
    assert.match(errors, /http: 302 Found: redirects are not followed/);
    assert.match(errors, /timeout: no complete response within webHook\.requestTimeout \(500 ms\)/);
    assert.equal(attempts.length, 6, 'three failures, three successes on the retry');
    assert.ok(rows.every((r) => r.status === 'delivered' && r.attempts === 2));
    const retried = receiver.requests.filter((r) => r.headers['x-event-attempt'] === '2');
    assert.equal(retried.length, 3);

    await receiver.close();
    await db.query("INSERT INTO orders (state) VALUES ('created')");
    const refused = await waitFor(async () => (await outbox(db)).find((r) => r.id === '4' && r.status === 'failed'), {
      what: 'refused event failed',
    });
    assert.equal(refused.last_error, 'connect: connection refused (ECONNREFUSED)');
    assert.equal(refused.attempts, 2);
  });

  it('delivers on a 2xx with a large body without reading all of it', async () => {
    const s = await stack('bigbody');
    s.receiver.respond = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(1024 * 1024, 'x');
      let sent = 0;
      const write = () => {
        while (sent < 64 && res.write(chunk)) sent++;
        if (sent < 64) res.once('drain', write);
        else res.end();
      };
      write();
    };
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    const row = await waitFor(async () => (await outbox(s.db)).find((r) => r.status !== 'pending'), { what: 'settled' });
    assert.equal(row.status, 'delivered');
    assert.equal(row.last_status, 200);
  });

  it('a change mapped again (a server crash undid its record) is sent under the same event id', async () => {
    const s = await stack('same_id', { startNow: false });
    const id = await insertOrder(s.db);
    await s.db.query("UPDATE orders SET state = 'accepted', due_date = '2027-06-01' WHERE id = $1", [id]);
    await s.db.query('CREATE TABLE journal_copy AS SELECT * FROM order_webhooks.change');
    assert.equal((await s.db.query('SELECT 1 FROM journal_copy')).length, 2);
    await s.start();
    const first = (await s.receiver.waitForCount(3)).slice(0, 3);
    await waitFor(
      async () => {
        const r = await outbox(s.db);
        return r.length === 3 && r.every((row) => row.status === 'delivered');
      },
      { what: 'delivered' },
    );
    await s.service!.stop();
    // What a crash of the database server before the record's commit reached the disk leaves:
    // the journal rows back, their events gone.
    await s.db.query('TRUNCATE order_webhooks.outbox, order_webhooks.outbox_attempt');
    await s.db.query('INSERT INTO order_webhooks.change OVERRIDING SYSTEM VALUE SELECT * FROM journal_copy');
    await s.start();
    const all = await s.receiver.waitForCount(6);
    const ids = (requests: typeof first) => requests.map((r) => `${r.headers['x-event-id']} ${r.body}`).sort();
    assert.deepEqual(ids(all.slice(3)), ids(first));
    assert.equal(new Set(first.map((r) => r.headers['x-event-id'])).size, 3, 'each event its own id');
  });

  it('says plainly that webhooks are disabled, runs idle until SIGTERM and sends nothing; the journal keeps the changes', async () => {
    const s = await stack('disabled', { webHook: { enabled: false }, startNow: false });
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    const result = await runUntil(['start', '--config', s.configPath], '"msg":"started"');
    assert.deepEqual([result.code, result.signal], [0, null]);
    assert.match(result.stdout, /"msg":"stopped"/);
    assert.match(result.stdout, /webhooks are disabled \(webHook\.enabled is false\)/);
    assert.equal(s.receiver.requests.length, 0);
    assert.deepEqual(await s.db.query('SELECT op FROM order_webhooks.change'), [{ op: 'INSERT' }]);
  });

  it('stops on SIGTERM with exit code 0', async () => {
    const s = await stack('sigterm');
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await s.receiver.waitForCount(1);
    const exit = await s.service!.stop();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.match(s.service!.output(), /"msg":"stopped"/);
    await waitFor(async () => (await serviceConnections(s.db)).length === 0, {
      what: 'every service connection closed, the wake lock with it',
    });
  });
});
