// Alerts to a person: each kind fires once when it starts (two instances checking), repeats every
// repeatEvery, resolves once; every message is signed with X-Signature; an alert endpoint that hangs
// delays no webhook; `check --send` posts a test alert. Real PostgreSQL, real receivers.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { Alerter, AlertSender, stepOf } from '../src/alerts/alerter.ts';
import { parseConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { verifySignature } from '../src/delivery/sign.ts';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { checkDeliveries, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { type Receiver, startReceiver } from './helpers/receiver.ts';
import { outbox, type Stack, stacksClosedAfter } from './helpers/stack.ts';

const SECRET = 'alert-secret-7c1d';

interface Message {
  alert: string;
  state: string;
  endpoint: string | null;
  text: string;
  at: string;
}

const messages = (receiver: Receiver, kind?: string, state?: string): Message[] =>
  receiver.requests
    .map((r) => JSON.parse(r.body) as Message)
    .filter((m) => (kind === undefined || m.alert === kind) && (state === undefined || m.state === state));

describe('alert steps', () => {
  it('start when it begins, repeat after repeatEvery, end once when it stops', () => {
    const at = (ms: number) => new Date(1_000_000 + ms);
    assert.equal(stepOf({ firing: true }, undefined, 1_000_000, 5000), 'start');
    assert.equal(stepOf({ firing: true }, { kind: 'lag', endpoint: '', firing: false, sent_at: at(0) }, 1_000_000, 5000), 'start');
    assert.equal(stepOf({ firing: true }, { kind: 'lag', endpoint: '', firing: true, sent_at: at(-4999) }, 1_000_000, 5000), null);
    assert.equal(stepOf({ firing: true }, { kind: 'lag', endpoint: '', firing: true, sent_at: at(-5000) }, 1_000_000, 5000), 'repeat');
    assert.equal(stepOf({ firing: false }, { kind: 'lag', endpoint: '', firing: true, sent_at: at(0) }, 1_000_000, 5000), 'end');
    assert.equal(stepOf({ firing: false }, { kind: 'lag', endpoint: '', firing: false, sent_at: at(0) }, 1_000_000, 5000), null);
    assert.equal(stepOf({ firing: false }, undefined, 1_000_000, 5000), null);
  });
});

describe('alerts', () => {
  let s: Stack;
  let alerts: Receiver;
  let pool: pg.Pool;
  let alerters: Alerter[];
  // Before the stack's own: the alerters stop before their database is dropped.
  after(async () => {
    for (const a of alerters) await a.stop();
    await pool.end();
    await alerts.close();
  });
  const stack = stacksClosedAfter();

  before(async () => {
    s = await stack('alerts', { startNow: false });
    alerts = await startReceiver('/alerts');
    pool = new pg.Pool({ connectionString: s.db.url, max: 4 });
    pool.on('error', () => undefined);
    const config = parseConfig({
      database: { url: s.db.url },
      orders: { dueDateColumn: 'due_date' },
      alerts: { endpoint: alerts.url, secret: SECRET, lagOver: 'PT1S', repeatEvery: 'PT3S', checkInterval: 'PT0.1S' },
    });
    const target = { schema: 'order_webhooks', orders: config.orders };
    const log = createLogger('silent');
    // Two instances checking the same database: each message must still go once.
    alerters = [0, 1].map(
      () =>
        new Alerter(
          config.alerts!,
          new AlertSender(config.alerts!, {}, log, [100]),
          { db: pool, schema: 'order_webhooks', target, endpoints: ['default', 'audit'], failedWindowMs: 1500 },
          log,
        ),
    );
    for (const a of alerters) a.start();
  });

  const once = async (kind: string) => {
    await waitFor(() => messages(alerts, kind, 'firing').length >= 1, { what: `${kind} firing` });
    return messages(alerts, kind, 'firing')[0]!;
  };

  it('endpoint_down: fires once (two instances), repeats, resolves once; signed', async () => {
    await s.db.query(
      `INSERT INTO order_webhooks.endpoint_state (endpoint, state, failures, opened_at, next_probe_at, probe_interval_ms)
       VALUES ('default', 'down', 20, now(), now() + interval '1 hour', 10000)`,
    );
    const first = await once('endpoint_down');
    assert.equal(first.endpoint, 'default');
    assert.match(first.text, /endpoint default is down/);
    assert.ok(!Number.isNaN(Date.parse(first.at)));
    // Repeated after repeatEvery (3 s), not before; still one per step.
    await waitFor(() => messages(alerts, 'endpoint_down', 'firing').length >= 2, { what: 'the repeat', timeoutMs: 10_000 });
    const [a, b] = alerts.requests.filter((r) => JSON.parse(r.body).alert === 'endpoint_down');
    assert.ok(b!.at - a!.at >= 2500, `repeat after ${b!.at - a!.at} ms`);
    await s.db.query("UPDATE order_webhooks.endpoint_state SET state = 'up', next_probe_at = NULL WHERE endpoint = 'default'");
    await waitFor(() => messages(alerts, 'endpoint_down', 'resolved').length >= 1, { what: 'resolved' });
    // A few more checks of both instances: nothing more is sent.
    const settled = alerts.requests.length;
    await waitFor(
      async () => (await s.db.query("SELECT 1 FROM order_webhooks.alert WHERE NOT firing AND kind = 'endpoint_down'")).length === 1,
    );
    const done = alerters.map((a) => a.checks);
    await waitFor(() => alerters.every((a, i) => a.checks >= done[i]! + 3), { what: 'three more checks of each instance' });
    assert.equal(messages(alerts, 'endpoint_down', 'resolved').length, 1);
    assert.equal(messages(alerts, 'endpoint_down', 'firing').length, 2);
    assert.equal(alerts.requests.length, settled);
    for (const r of alerts.requests) assert.ok(verifySignature(SECRET, r.body, r.headers['x-signature'] as string), 'X-Signature');
  });

  it('capture_broken: a disabled trigger fires it once, enabled again resolves it', async () => {
    await s.db.query('ALTER TABLE orders DISABLE TRIGGER order_webhooks_capture_insert');
    const first = await once('capture_broken');
    assert.equal(first.endpoint, null);
    assert.match(first.text, /capture trigger disabled on .*orders/);
    await s.db.query('ALTER TABLE orders ENABLE TRIGGER order_webhooks_capture_insert');
    await waitFor(() => messages(alerts, 'capture_broken', 'resolved').length === 1, { what: 'resolved' });
    assert.equal(messages(alerts, 'capture_broken', 'firing').length, 1);
  });

  it('lag: a change older than lagOver fires it; delivered, it resolves', async () => {
    // No service runs: the change waits in the journal.
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    // A change not yet made into events is every endpoint's: each endpoint's lag alert fires, once.
    await waitFor(() => messages(alerts, 'lag', 'firing').length >= 2, { what: 'lag firing for both endpoints' });
    const firing = messages(alerts, 'lag', 'firing');
    assert.deepEqual(firing.map((m) => m.endpoint).sort(), ['audit', 'default']);
    assert.match(
      firing.find((m) => m.endpoint === 'audit')!.text,
      /oldest undelivered change to endpoint audit is \d+ s old \(over alerts.lagOver, 1 s\)/,
    );
    await s.db.query('DELETE FROM order_webhooks.change');
    await waitFor(() => messages(alerts, 'lag', 'resolved').length === 2, { what: 'resolved' });
    assert.equal(messages(alerts, 'lag', 'firing').length, 2);
  });

  it('events_failed: an event given up fires it; a window without any resolves it', async () => {
    await s.db.query(
      `WITH o AS (INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body, status, attempts, last_error, next_attempt_at)
                  VALUES (gen_random_uuid(), 1, 'o-1', 'OrderCreated', '{}', 'failed', 1, 'http: 422', NULL) RETURNING id, event_id)
       INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind)
       SELECT id, event_id, 1, now(), 3, 422, 'http: 422', 'http_status' FROM o`,
    );
    // Given up by the endpoint `default` (the outbox row's default): its alert, not audit's.
    const first = await once('events_failed');
    assert.equal(first.endpoint, 'default');
    assert.match(first.text, /1 event\(s\) to endpoint default given up in the last minute \(http: 422\)/);
    await waitFor(() => messages(alerts, 'events_failed', 'resolved').length === 1, { what: 'resolved', timeoutMs: 10_000 });
    assert.equal(messages(alerts, 'events_failed', 'firing').length, 1);
    assert.equal(messages(alerts, 'events_failed').filter((m) => m.endpoint === 'audit').length, 0);
  });
});

describe('alerts: a dead alert endpoint', () => {
  const stack = stacksClosedAfter();

  it('delays no webhook: orders are delivered while every alert hangs, and the failure is logged at error', async () => {
    // Accepts connections and never answers.
    const sockets: import('node:net').Socket[] = [];
    const hanging = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as import('node:net').AddressInfo).port;
    try {
      const s = await stack('alerts_dead', { startNow: false });
      const config = {
        ...s.config,
        alerts: { endpoint: `http://127.0.0.1:${port}/alerts`, checkInterval: 'PT0.1S', requestTimeout: 'PT1S' },
      };
      // capture_broken fires at once (deletes are not captured) while inserts and updates still are.
      await s.db.query('ALTER TABLE orders DISABLE TRIGGER order_webhooks_capture_delete');
      s.service = await startService(writeConfig(config));
      const started = Date.now();
      const ids = await playOrders(s.db, 10);
      await waitFor(async () => (await outbox(s.db)).filter((e) => e.status === 'delivered').length === 40, {
        what: 'every webhook delivered',
      });
      const tookMs = Date.now() - started;
      await checkDeliveries(s.db, s.receiver.requests, ids);
      await waitFor(() => sockets.length >= 1, { what: 'the alert attempted' });
      // Each alert hangs for requestTimeout (1 s) per try; the webhooks did not wait for them.
      assert.ok(tookMs < 10_000, `delivered in ${tookMs} ms`);
      await s.service.waitForLog(/"level":50,[^\n]*"msg":"alert could not be sent to alerts.endpoint/, 30_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      hanging.close();
    }
  });

  it('check --send posts a signed test alert', async () => {
    const s = await stack('alerts_check', { startNow: false });
    const alerts = await startReceiver('/alerts');
    try {
      const path = writeConfig({ ...s.config, alerts: { endpoint: alerts.url, secret: SECRET } });
      const checked = await run(['check', '--send', '--config', path]);
      assert.equal(checked.code, 0, checked.stdout + checked.stderr);
      assert.match(checked.stdout, /ok\s+alert\s+test alert answered by .* \(signed\)/);
      assert.equal(alerts.requests.length, 1);
      const message = JSON.parse(alerts.requests[0]!.body) as Message;
      assert.equal(message.alert, 'test');
      assert.ok(verifySignature(SECRET, alerts.requests[0]!.body, alerts.requests[0]!.headers['x-signature'] as string));
      assert.ok(!checked.stdout.includes(SECRET));
    } finally {
      await alerts.close();
    }
  });
});
