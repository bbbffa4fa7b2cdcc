import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomUUID } from 'node:crypto';
import { checkDeliveries, ORDER_LIFE, playOrder, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { startReceiver } from './helpers/receiver.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

describe('retries', () => {
  const stack = stacksClosedAfter();

  it('receiver down, then up: the backlog drains, in order per order, same event id on every retry', async () => {
    const s = await stack('down_up', {
      webHook: { retry: { delays: ['PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S', 'PT0.3S'] } },
    });
    const port = s.receiver.port;
    await s.receiver.close();
    const ids = await playOrders(s.db, 5);
    await waitFor(
      async () =>
        (await s.db.query("SELECT 1 FROM order_webhooks.outbox_attempt WHERE error LIKE 'connect: connection refused%'")).length >= 5,
      { what: 'refused attempts recorded' },
    );
    // Back up on the same port.
    const receiver = await startReceiver('/automation', port);
    s.receiver = receiver;
    await waitFor(
      async () => {
        const r = await outbox(s.db);
        return r.length === 5 * ORDER_LIFE.length && r.every((row) => row.status === 'delivered');
      },
      { what: 'backlog delivered', timeoutMs: 30_000 },
    );
    await checkDeliveries(s.db, receiver.requests, ids);
    const heads = receiver.requests.filter((r) => JSON.parse(r.body).eventType === 'OrderCreated');
    assert.ok(
      heads.every((r) => Number(r.headers['x-event-attempt']) >= 2),
      'the heads were retries',
    );
    const rows = await outbox(s.db);
    // The attempts view: events delivered at their first try have no attempt row of their own.
    const attemptIds = await s.db.query<{ event_id: string }>('SELECT DISTINCT event_id::text FROM order_webhooks.attempts');
    assert.equal(attemptIds.length, rows.length, 'one event id per event, across all its attempts');
  });

  it('a hanging, a failing and a slow receiver do not hold up other orders; the last attempt makes an event failed and its order goes on', async () => {
    const s = await stack('slow', {
      webHook: { concurrency: 4, requestTimeout: 'PT2S', retry: { delays: ['PT0.3S', 'PT0.3S', 'PT0.3S'] } },
    });
    const [hanging, failing, slow] = [randomUUID(), randomUUID(), randomUUID()];
    s.receiver.respond = (request, res) => {
      const { orderId, eventType } = JSON.parse(request.body);
      if (eventType !== 'OrderCreated') return void res.end('ok');
      if (orderId === hanging) return; // never answers
      if (orderId === failing) {
        res.statusCode = 500;
        return void res.end('no');
      }
      if (orderId === slow) return void setTimeout(() => res.end('ok'), 300);
      res.end('ok');
    };
    for (const id of [hanging, failing, slow]) await playOrder(s.db, id);
    // Other orders flow while the first three are stuck at their heads.
    const others = await playOrders(s.db, 10);
    await waitFor(
      async () => {
        const rows = await outbox(s.db);
        return others.every((id) => rows.filter((r) => r.order_id === id && r.status === 'delivered').length === ORDER_LIFE.length);
      },
      { what: 'the other orders delivered', timeoutMs: 30_000 },
    );

    const rows = await waitFor(
      async () => {
        // A change on its first attempt is still in the journal; its outbox row comes with the result.
        const inJournal = await s.db.query('SELECT 1 FROM order_webhooks.change');
        const r = await outbox(s.db);
        return inJournal.length === 0 && r.every((row) => row.status !== 'pending') && r;
      },
      { what: 'everything settled', timeoutMs: 30_000 },
    );
    const head = (id: string) => rows.find((r) => r.order_id === id && r.event_type === 'OrderCreated')!;
    // The other orders were all delivered before the hanging one even gave up on its head.
    const [{ gave_up }] = (await s.db.query<{ gave_up: Date }>(
      "SELECT max(a.started_at + a.duration_ms * interval '1 ms') AS gave_up FROM order_webhooks.outbox_attempt a WHERE a.outbox_id = $1",
      [head(hanging).id],
    )) as [{ gave_up: Date }];
    const othersDone = Math.max(...rows.filter((r) => others.includes(r.order_id)).map((r) => r.delivered_at!.getTime()));
    assert.ok(othersDone < gave_up.getTime(), 'other orders were not held up by the hanging one');
    assert.equal(head(hanging).status, 'failed');
    assert.equal(head(hanging).attempts, 4);
    assert.match(head(hanging).last_error!, /^timeout: no complete response within webHook\.requestTimeout \(2000 ms\)$/);
    assert.equal(head(failing).status, 'failed');
    assert.equal(head(failing).last_status, 500);
    assert.equal(head(slow).status, 'delivered');
    assert.ok(head(slow).response_ms! >= 290, `slow response recorded: ${head(slow).response_ms}`);
    // Once the head failed, the rest of its order went ahead.
    for (const id of [hanging, failing]) {
      assert.deepEqual(
        rows.filter((r) => r.order_id === id && r.event_type !== 'OrderCreated').map((r) => r.status),
        ['delivered', 'delivered', 'delivered'],
      );
    }
    const timeouts = await s.db.query<{ duration_ms: number }>(
      "SELECT a.duration_ms FROM order_webhooks.outbox_attempt a JOIN order_webhooks.outbox o ON o.id = a.outbox_id WHERE o.order_id = $1 AND o.event_type = 'OrderCreated'",
      [hanging],
    );
    assert.equal(timeouts.length, 4);
    assert.ok(
      timeouts.every((t) => t.duration_ms >= 1950 && t.duration_ms < 4000),
      `bounded by the timeout: ${timeouts.map((t) => t.duration_ms)}`,
    );

    // A failed event is sent again when an operator sets it back to pending.
    await s.db.query("UPDATE order_webhooks.outbox SET status = 'pending', next_attempt_at = now() WHERE event_id = $1", [
      head(failing).event_id,
    ]);
    s.receiver.respond = (_req, res) => res.end('ok');
    const again = await waitFor(
      async () => (await outbox(s.db)).find((r) => r.event_id === head(failing).event_id && r.status === 'delivered'),
      { what: 'redelivered' },
    );
    assert.equal(again.attempts, 5);
  });

  it('honours Retry-After on 429 and 503, in seconds or as an HTTP date', async () => {
    const s = await stack('retry_after', { webHook: { retry: { delays: ['PT0.1S', 'PT0.1S', 'PT0.1S'] } } });
    const answers = [
      (res: import('node:http').ServerResponse) => {
        res.writeHead(429, { 'retry-after': '2' });
        res.end();
      },
      (res: import('node:http').ServerResponse) => {
        res.writeHead(503, { 'retry-after': new Date(Date.now() + 4000).toUTCString() });
        res.end();
      },
    ];
    s.receiver.respond = (_req, res) => (answers.shift() ?? ((r) => r.end('ok')))(res);
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await s.receiver.waitForCount(3, 20_000);
    const [first, second, third] = s.receiver.requests;
    assert.ok(second!.at - first!.at >= 1900, `waited ${second!.at - first!.at} ms after Retry-After: 2`);
    assert.ok(third!.at - second!.at >= 2000, `waited ${third!.at - second!.at} ms after a Retry-After date`);
    const [row] = await outbox(s.db);
    await waitFor(async () => (await outbox(s.db))[0]!.status === 'delivered', { what: 'delivered' });
    assert.equal(row!.event_type, 'OrderCreated');
    const errors = await s.db.query<{ error: string }>(
      'SELECT error FROM order_webhooks.outbox_attempt WHERE error IS NOT NULL ORDER BY id',
    );
    assert.deepEqual(
      errors.map((e) => e.error),
      ['http: 429 Too Many Requests', 'http: 503 Service Unavailable'],
    );
  });
});
