// Several receivers (`webHooks`): each change fanned out to every endpoint that wants it, each with
// its own ids, signature, TLS, order and trouble. Real receivers, a real service, real PostgreSQL.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { verifySignature } from '../src/delivery/sign.ts';
import { eventId, eventTimeMs } from '../src/mapping/eventId.ts';
import { listMigrations } from '../src/schema/migrate.ts';
import { run } from './helpers/cli.ts';
import { startHttpsReceiver } from './helpers/httpsServer.ts';
import { makePki, type Pki } from './helpers/pki.ts';
import { ORDER_LIFE, playOrder, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { type Received, type Receiver, startReceiver } from './helpers/receiver.ts';
import { type Stack, stacksClosedAfter } from './helpers/stack.ts';

interface Row {
  id: string;
  endpoint: string;
  event_id: string;
  order_id: string;
  event_type: string;
  status: string;
  attempts: number;
  next_attempt_at: Date | null;
}

const rowsOf = (s: Stack) =>
  s.db.query<Row>(
    'SELECT o.id::text, endpoint, event_id::text, order_id, event_type, status, attempts, next_attempt_at FROM order_webhooks.outbox o ORDER BY o.id',
  );

/** Rewrites the stack's config with these `webHooks` entries (and `webHook` changes). */
function configure(s: Stack, webHooks: object[], webHook: object = {}): void {
  s.config = { ...s.config, webHook: { ...s.config.webHook, ...webHook }, webHooks };
  writeFileSync(s.configPath, JSON.stringify(s.config));
}

/** Per order, the first arrivals at one receiver follow the outbox order of that endpoint's events. */
function assertOrderPerOrder(rows: Row[], endpoint: string, requests: readonly Received[]): void {
  const first = new Map<string, number>();
  requests.forEach((r, n) => {
    const id = r.headers['x-event-id'] as string;
    if (!first.has(id)) first.set(id, n);
  });
  const byOrder = new Map<string, number[]>();
  for (const row of rows.filter((r) => r.endpoint === endpoint)) {
    const at = first.get(row.event_id);
    assert.ok(at !== undefined, `${endpoint}: event ${row.event_id} (${row.event_type}) never arrived`);
    byOrder.set(row.order_id, [...(byOrder.get(row.order_id) ?? []), at]);
  }
  for (const [order, arrivals] of byOrder) {
    const types = rows.filter((r) => r.endpoint === endpoint && r.order_id === order).map((r) => `${r.id} ${r.event_type}`);
    assert.deepEqual(
      arrivals,
      [...arrivals].sort((a, b) => a - b),
      `${endpoint}: order ${order} in order (${types.join(', ')})`,
    );
  }
}

describe('endpoints', () => {
  const stack = stacksClosedAfter();
  const receivers: Receiver[] = [];
  const receiver = async (path: string) => {
    const r = await startReceiver(path);
    receivers.push(r);
    return r;
  };
  after(async () => {
    for (const r of receivers) await r.close();
  });

  it("keeps default's event ids as they were, and gives every other endpoint ids of its own", () => {
    const source = { changeId: '42', changedAtUs: '1765000000123456', orderId: 'o-1' };
    const installation = '0b3f4e1c-0000-4000-8000-000000000000';
    // A fixed value: the ids of events already delivered must never change with this release.
    assert.equal(eventId(installation, source, 0), eventId(installation, source, 0, 'default'));
    assert.notEqual(eventId(installation, source, 0, 'billing'), eventId(installation, source, 0));
    assert.notEqual(eventId(installation, source, 0, 'billing'), eventId(installation, source, 0, 'audit'));
    assert.equal(eventId(installation, source, 0, 'billing').slice(0, 13), eventId(installation, source, 0).slice(0, 13), 'same time');
  });

  it('one change gives one event per endpoint whose events accept it, each with its own id and signature', async () => {
    const s = await stack('fanout', { startNow: false, webHook: { secret: 'DefaultSecret-1' } });
    const billing = await receiver('/billing');
    const audit = await receiver('/audit');
    configure(s, [
      { name: 'billing', endpoint: billing.url, secret: 'BillingSecret-2', events: ['OrderSigned', 'OrderCanceled'], key: 'BillKey' },
      { name: 'audit', endpoint: audit.url, signatureEncoding: 'base64', secret: 'AuditSecret-3' },
    ]);
    await s.start();
    const id = await playOrder(s.db);
    await s.receiver.waitForCount(4);
    await billing.waitForCount(1);
    await audit.waitForCount(4);
    const rows = await waitFor(
      async () => {
        const r = await rowsOf(s);
        return r.length === 9 && r.every((row) => row.status === 'delivered') && r;
      },
      { what: 'nine events delivered' },
    );
    assert.deepEqual(
      rows.filter((r) => r.endpoint === 'billing').map((r) => r.event_type),
      ['OrderSigned'],
    );
    assert.deepEqual(
      rows.filter((r) => r.endpoint === 'audit').map((r) => r.event_type),
      ORDER_LIFE,
    );
    const check = (got: Received[], endpoint: string, secret: string, encoding: 'hex' | 'base64' = 'hex') => {
      for (const request of got) {
        const row = rows.find((r) => r.event_id === request.headers['x-event-id']);
        assert.ok(row, `${endpoint}: X-Event-Id is its outbox event's`);
        assert.equal(row.endpoint, endpoint);
        assert.equal(request.body, `{"orderId":"${id}","eventType":"${row.event_type}"}`, 'the body of the spec');
        assert.ok(verifySignature(secret, request.body, request.headers['x-signature'] as string, encoding), `${endpoint}: its own secret`);
      }
    };
    check(s.receiver.requests, 'default', 'DefaultSecret-1');
    check(billing.requests, 'billing', 'BillingSecret-2');
    check(audit.requests, 'audit', 'AuditSecret-3', 'base64');
    assert.equal(billing.requests[0]!.url, '/billing/?key=BillKey', "each endpoint's own key");
    assert.equal(new Set(rows.map((r) => r.event_id)).size, 9, 'nine distinct event ids');
    assert.ok(!verifySignature('DefaultSecret-1', audit.requests[0]!.body, audit.requests[0]!.headers['x-signature'] as string));
    // A change with one event for one endpoint goes straight from the journal: none here wait.
    const views = await s.db.query<{ endpoint: string; events: string }>(
      "SELECT endpoint, sum(events)::text AS events FROM order_webhooks.summary WHERE status = 'delivered' GROUP BY endpoint ORDER BY endpoint",
    );
    assert.deepEqual(
      views.map((v) => [v.endpoint, v.events]),
      [
        ['audit', '4'],
        ['billing', '1'],
        ['default', '4'],
      ],
    );
  });

  it('one endpoint answering 503 and one hanging never delay a healthy one', async () => {
    const s = await stack('isolation', {
      startNow: false,
      webHook: { concurrency: 2, retry: { delays: ['PT0.2S'] } },
    });
    s.receiver.respond = (_req, res) => {
      res.statusCode = 503;
      res.end('down');
    };
    const hanging = await receiver('/hang');
    hanging.respond = () => undefined;
    const healthy = await receiver('/healthy');
    configure(s, [
      { name: 'hanging', endpoint: hanging.url, concurrency: 2, requestTimeout: 'PT5S', leaseTimeout: 'PT10S' },
      { name: 'healthy', endpoint: healthy.url, concurrency: 4 },
    ]);
    await s.start();
    const started = Date.now();
    const orders = 25;
    await playOrders(s.db, orders, 4);
    const wrote = Date.now();
    await healthy.waitForCount(orders * ORDER_LIFE.length, 15_000);
    const tookMs = Date.now() - wrote;
    assert.ok(tookMs < 5000, `the healthy endpoint had every event ${tookMs} ms after the last change`);
    // Every arrival within a short while of its change (the event id's time), never behind the others' trouble.
    const slowest = Math.max(...healthy.requests.map((r) => r.at - eventTimeMs(r.headers['x-event-id'] as string)));
    assert.ok(slowest < 3000, `slowest healthy delivery ${slowest} ms after its change`);
    assert.ok(hanging.requests.length <= 4, 'the hanging endpoint has its own two slots, still held');
    // Results are written in batches, just after the answers: wait for the last ones.
    const rows = await waitFor(
      async () => {
        const r = await rowsOf(s);
        return r.filter((row) => row.endpoint === 'healthy' && row.status === 'delivered').length === orders * ORDER_LIFE.length && r;
      },
      { what: "the healthy endpoint's results recorded" },
    );
    assertOrderPerOrder(rows, 'healthy', healthy.requests);
    const counts = Object.fromEntries(
      ['default', 'hanging', 'healthy'].map((e) => [e, rows.filter((r) => r.endpoint === e && r.status === 'delivered').length]),
    );
    assert.deepEqual(counts, { default: 0, hanging: 0, healthy: orders * ORDER_LIFE.length });
    assert.ok(Date.now() - started < 60_000);
  });

  it('a disabled endpoint sends nothing and loses nothing: its events wait, then go out in order once enabled', async () => {
    const s = await stack('disabled', { startNow: false });
    const paused = await receiver('/paused');
    configure(s, [{ name: 'paused', endpoint: paused.url, enabled: false }]);
    await s.start();
    const ids = await playOrders(s.db, 5, 2);
    await s.receiver.waitForCount(20);
    const waiting = await waitFor(
      async () => {
        const r = (await rowsOf(s)).filter((row) => row.endpoint === 'paused');
        return r.length === 20 && r;
      },
      { what: "the paused endpoint's 20 events in the outbox" },
    );
    assert.ok(
      waiting.every((r) => r.status === 'pending' && r.attempts === 0),
      'pending, never tried',
    );
    assert.equal(waiting.filter((r) => r.next_attempt_at !== null).length, 5, "one head per order: each order's first");
    assert.equal(paused.requests.length, 0);
    await s.service!.stop();
    configure(s, [{ name: 'paused', endpoint: paused.url }]);
    await s.start();
    await paused.waitForCount(20);
    const rows = await waitFor(
      async () => {
        const r = await rowsOf(s);
        return r.every((row) => row.status === 'delivered') && r;
      },
      { what: 'every event delivered' },
    );
    assertOrderPerOrder(rows, 'paused', paused.requests);
    assert.equal(s.receiver.requests.length, 20, 'default got each of its events once');
    assert.equal(new Set(paused.requests.map((r) => JSON.parse(r.body).orderId)).size, ids.length);
  });

  it('kill -9 during a burst: every event of every endpoint delivered, in order per (endpoint, order)', async () => {
    const s = await stack('endpoints_kill9', {
      startNow: false,
      webHook: { leaseTimeout: 'PT2S', requestTimeout: 'PT1S', concurrency: 4 },
      database: { pollInterval: 'PT0.2S' },
    });
    const second = await receiver('/second');
    const third = await receiver('/third');
    configure(s, [
      { name: 'second', endpoint: second.url, leaseTimeout: 'PT2S', requestTimeout: 'PT1S', concurrency: 4 },
      {
        name: 'third',
        endpoint: third.url,
        leaseTimeout: 'PT2S',
        requestTimeout: 'PT1S',
        concurrency: 2,
        events: ['OrderAccepted', 'OrderSigned'],
      },
    ]);
    for (const r of [s.receiver, second, third]) r.respond = (_req, res) => setTimeout(() => res.end('ok'), 5);
    await s.start();
    const orders = 40;
    const burst = playOrders(s.db, orders, 4);
    for (let i = 0; i < 3; i++) {
      const threshold = second.requests.length + 10 + Math.floor(Math.random() * 20);
      await second.waitForCount(threshold, 30_000);
      await s.service!.kill();
      await s.start();
    }
    await burst;
    const total = orders * (4 + 4 + 2);
    const rows = await waitFor(
      async () => {
        const r = await rowsOf(s);
        return r.length === total && r.every((row) => row.status === 'delivered') && r;
      },
      { what: `${total} events delivered`, timeoutMs: 60_000 },
    );
    assert.equal((await s.db.query('SELECT 1 FROM order_webhooks.change')).length, 0);
    assertOrderPerOrder(rows, 'default', s.receiver.requests);
    assertOrderPerOrder(rows, 'second', second.requests);
    assertOrderPerOrder(rows, 'third', third.requests);
    for (const order of new Set(rows.map((r) => r.order_id))) {
      assert.deepEqual(
        rows.filter((r) => r.order_id === order && r.endpoint === 'third').map((r) => r.event_type),
        ['OrderAccepted', 'OrderSigned'],
      );
    }
  });

  it('migrates a version-8 schema: every event belongs to default, nothing is sent again, pending ones go out', async () => {
    const s = await stack('endpoints_v8', { startNow: false });
    const [v5, v7] = [5, 7].map((v) => listMigrations('order_webhooks').find((m) => m.version === v)!.sql);
    // Back to version 8: migration 9 undone, migration 5's views and functions and migration 7's trigger function as they were.
    await s.db.query(`DROP VIEW order_webhooks.events, order_webhooks.attempts, order_webhooks.pending,
        order_webhooks.failures, order_webhooks.summary;
      DROP FUNCTION order_webhooks.replay_event, order_webhooks.replay_failed, order_webhooks.replay_order,
        order_webhooks.replay_range, order_webhooks.replay_outbox, order_webhooks.attempt_in_flight;
      ALTER TABLE order_webhooks.outbox DROP COLUMN replayed_at, DROP COLUMN endpoint;
      CREATE INDEX outbox_due ON order_webhooks.outbox (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;
      CREATE INDEX outbox_order_pending ON order_webhooks.outbox (order_id, id) WHERE status = 'pending';
      DELETE FROM order_webhooks.migration WHERE version = 9`);
    await s.db.query(v5!);
    await s.db.query(v7!);
    // Events as version 8 left them: one order delivered, one failed, one with a head waiting for
    // its retry and an event behind it.
    await s.db.query(`INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body, status, attempts, next_attempt_at, delivered_at)
      VALUES (gen_random_uuid(), 1, 'a', 'OrderCreated', '{"orderId":"a","eventType":"OrderCreated"}', 'delivered', 1, NULL, now()),
             (gen_random_uuid(), 2, 'b', 'OrderCreated', '{"orderId":"b","eventType":"OrderCreated"}', 'failed', 3, NULL, NULL),
             (gen_random_uuid(), 3, 'c', 'OrderCreated', '{"orderId":"c","eventType":"OrderCreated"}', 'pending', 1, now() + interval '1 second', NULL),
             (gen_random_uuid(), 4, 'c', 'OrderAccepted', '{"orderId":"c","eventType":"OrderAccepted"}', 'pending', 0, NULL, NULL)`);
    const migrated = await run(['migrate', '--config', s.configPath]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /applied 9_endpoints/);
    const before = await rowsOf(s);
    assert.deepEqual(
      before.map((r) => [r.endpoint, r.order_id, r.status]),
      [
        ['default', 'a', 'delivered'],
        ['default', 'b', 'failed'],
        ['default', 'c', 'pending'],
        ['default', 'c', 'pending'],
      ],
    );
    const columns = await s.db.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.columns WHERE table_schema = 'order_webhooks' AND column_name = 'endpoint' ORDER BY 1`,
    );
    assert.deepEqual(
      columns.map((c) => c.table_name),
      ['alert', 'attempts', 'endpoint_state', 'endpoint_states', 'events', 'failures', 'outbox', 'pending', 'summary'],
    );
    await s.start();
    await s.receiver.waitForCount(2);
    await waitFor(async () => (await rowsOf(s)).filter((r) => r.order_id === 'c').every((r) => r.status === 'delivered'), {
      what: "order c's events delivered",
    });
    assert.deepEqual(
      s.receiver.requests.map((r) => JSON.parse(r.body).eventType),
      ['OrderCreated', 'OrderAccepted'],
      'only the pending events, in order',
    );
    // The replay functions take an endpoint now; the failed event is replayed for default only.
    const [none] = await s.db.query<{ n: number }>("SELECT order_webhooks.replay_failed(endpoint => 'billing') AS n");
    assert.equal(none!.n, 0);
    const [one] = await s.db.query<{ n: number }>("SELECT order_webhooks.replay_failed(endpoint => 'default') AS n");
    assert.equal(one!.n, 1);
    await s.receiver.waitForCount(3);
    assert.equal(JSON.parse(s.receiver.requests[2]!.body).orderId, 'b');
  });

  describe('TLS per endpoint', () => {
    let pki: Pki;
    before(() => {
      pki = makePki();
    });
    after(() => rmSync(pki.dir, { recursive: true, force: true }));

    it('each endpoint verifies with its own trust file and presents its own client certificate', async () => {
      const mutual = await startHttpsReceiver({ key: pki.read('server.key'), cert: pki.read('server.pem'), clientCa: pki.read('ca.pem') });
      const plain = await startHttpsReceiver({ key: pki.read('self-signed.key'), cert: pki.read('self-signed.pem') });
      try {
        const s = await stack('endpoints_tls', { startNow: false });
        configure(s, [
          {
            name: 'mutual',
            endpoint: mutual.url,
            useSslTrustAll: false,
            useSslClientCert: true,
            sslKeyFile: pki.path('client.p12'),
            sslKeyPassword: 'Tls-Pa55word-7q',
            sslTrustFile: pki.path('ca.pem'),
          },
          // Trusts all (the spec's default): a self-signed receiver, no client certificate.
          { name: 'plain', endpoint: plain.url },
        ]);
        await s.start();
        await playOrder(s.db);
        await waitFor(() => mutual.clients.length === 4 && plain.clients.length === 4, { what: 'four events at each HTTPS endpoint' });
        assert.deepEqual(mutual.clients, Array(4).fill('webhook-client'), "the mutual endpoint's client certificate");
        assert.deepEqual(plain.clients, Array(4).fill(null), 'no client certificate where none is configured');
        await s.receiver.waitForCount(4);
      } finally {
        await mutual.close();
        await plain.close();
      }
    });
  });
});
