// Several receivers at every operator surface: an endpoint added later and backfilled, one removed
// from the config, and --endpoint on status, outbox list, replay and purge; check --send and
// /metrics per endpoint. Real commands, a real service, real PostgreSQL.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { after, describe, it } from 'node:test';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { ORDER_LIFE, playOrder, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { type Receiver, startReceiver } from './helpers/receiver.ts';
import { type Stack, stacksClosedAfter } from './helpers/stack.ts';

const cli = (s: Stack, ...args: string[]) => run([...args, '--config', s.configPath]);
const json = async (s: Stack, ...args: string[]) => {
  const result = await cli(s, ...args, '--json');
  return { ...result, body: result.stdout ? JSON.parse(result.stdout) : undefined };
};

function configure(s: Stack, webHooks: object[]): void {
  s.config = { ...s.config, webHooks };
  writeFileSync(s.configPath, JSON.stringify(s.config));
}

const rowsOf = (s: Stack, endpoint: string) =>
  s.db.query<{ order_id: string; event_type: string; status: string; event_id: string }>(
    'SELECT order_id, event_type, status, event_id::text FROM order_webhooks.outbox o WHERE endpoint = $1 ORDER BY o.id',
    [endpoint],
  );

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpGet({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('endpoint operations', () => {
  const stack = stacksClosedAfter();
  const receivers: Receiver[] = [];
  after(async () => {
    for (const r of receivers) await r.close();
  });

  it('an endpoint added later gets changes from then on, and backfill gives it the earlier ones in their original order', async () => {
    const s = await stack('endpoints_backfill');
    const old = await playOrders(s.db, 3, 1);
    await s.receiver.waitForCount(12);
    await s.service!.stop();
    const crm = await startReceiver('/crm');
    receivers.push(crm);
    configure(s, [{ name: 'crm', endpoint: crm.url, events: ['OrderCreated', 'OrderSigned'] }]);
    await s.start();
    const later = await playOrder(s.db);
    await crm.waitForCount(2);
    assert.deepEqual(
      crm.requests.map((r) => JSON.parse(r.body)),
      [
        { orderId: later, eventType: 'OrderCreated' },
        { orderId: later, eventType: 'OrderSigned' },
      ],
      'from then on only',
    );
    // Asked first: with no terminal to ask on and no --yes it refuses, after saying how many.
    const refused = await cli(s, 'backfill', '--endpoint', 'crm', '--since', 'PT1H');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /backfill: 6 event\(s\) for endpoint crm/);
    assert.equal((await rowsOf(s, 'crm')).length, 2, 'nothing created');
    assert.equal((await cli(s, 'backfill', '--endpoint', 'nope', '--since', 'PT1H', '--yes')).code, 2, 'an endpoint not in the config');
    const done = await json(s, 'backfill', '--endpoint', 'crm', '--since', 'PT1H', '--yes');
    assert.equal(done.code, 0, done.stderr);
    assert.equal(done.body.created, 6);
    await crm.waitForCount(8);
    const got = crm.requests.slice(2).map((r) => JSON.parse(r.body));
    for (const order of old) {
      assert.deepEqual(
        got.filter((b) => b.orderId === order).map((b) => b.eventType),
        ['OrderCreated', 'OrderSigned'],
        `order ${order} in its original order`,
      );
    }
    const ids = new Set(crm.requests.map((r) => r.headers['x-event-id']));
    assert.equal(ids.size, 8, 'ids of its own');
    for (const r of s.receiver.requests) assert.ok(!ids.has(r.headers['x-event-id']), "never another endpoint's id");
    assert.equal((await json(s, 'backfill', '--endpoint', 'crm', '--since', 'PT1H', '--yes')).body.created, 0, 'twice adds nothing');
    assert.equal(s.receiver.requests.length, 16, 'default got nothing again');
  });

  it('a removed endpoint: its pending events stay unsent, status names it with the count, purge --endpoint deletes them', async () => {
    const s = await stack('endpoints_removed', { startNow: false });
    const billing = await startReceiver('/billing');
    receivers.push(billing);
    configure(s, [{ name: 'billing', endpoint: billing.url, enabled: false }]);
    await s.start();
    await playOrder(s.db);
    await s.receiver.waitForCount(4);
    await waitFor(async () => (await rowsOf(s, 'billing')).length === 4, { what: "billing's four events" });
    await s.service!.stop();
    configure(s, []);
    await s.start();
    await playOrder(s.db);
    await s.receiver.waitForCount(8);
    assert.equal((await rowsOf(s, 'billing')).length, 4, 'no new events for an endpoint not in the config');
    assert.equal(billing.requests.length, 0);
    const status = await cli(s, 'status');
    assert.equal(status.code, 1);
    const lines = status.stdout.split('\n').filter((l) => l.includes('billing'));
    assert.ok(
      lines.some((l) =>
        /needs attention: endpoint billing is not in the config: its 4 pending event\(s\) are not sent; `order-webhooks purge --endpoint billing` deletes them/.test(
          l,
        ),
      ),
      status.stdout,
    );
    assert.ok(
      lines.some((l) => /endpoint billing\s+│ removed from the config, 4 pending, 0 failed/.test(l)),
      status.stdout,
    );
    const refused = await cli(s, 'purge', '--endpoint', 'default', '--yes');
    assert.equal(refused.code, 2, 'the pending events of a configured endpoint are never purged');
    const purged = await json(s, 'purge', '--endpoint', 'billing', '--yes');
    assert.equal(purged.code, 0, purged.stderr);
    assert.equal(purged.body.deleted, 4);
    assert.equal((await rowsOf(s, 'billing')).length, 0);
    assert.equal((await rowsOf(s, 'default')).length, 8);
    assert.equal((await cli(s, 'status')).code, 0);
  });

  it('--endpoint on status, outbox list and replay; status --json one entry per endpoint; check --send posts to each; /metrics per endpoint', async () => {
    const s = await stack('endpoints_surfaces', { startNow: false });
    const audit = await startReceiver('/audit');
    receivers.push(audit);
    audit.respond = (_req, res) => {
      res.statusCode = 500;
      res.end();
    };
    configure(s, [{ name: 'audit', endpoint: audit.url, retry: { delays: ['PT0.1S'] } }]);
    const configPath = writeConfig({ ...s.config, http: { port: 0, ui: true } });
    s.service = await startService(configPath);
    await s.service.waitForLog('"msg":"http listening');
    const port = Number(/"port":(\d+),"msg":"http listening/.exec(s.service.output())![1]);
    const order = await playOrder(s.db);
    await s.receiver.waitForCount(4);
    await waitFor(async () => (await rowsOf(s, 'audit')).every((r) => r.status === 'failed') && (await rowsOf(s, 'audit')).length === 4, {
      what: "audit's four events failed",
    });

    const statusJson = await json(s, 'status');
    assert.equal(statusJson.code, 1, 'failed events need attention');
    assert.deepEqual(
      statusJson.body.endpoints.map((e: { endpoint: string; state: string; pending: number; failed: number; delivered: number }) => [
        e.endpoint,
        e.state,
        e.pending,
        e.failed,
        e.delivered,
      ]),
      [
        ['default', 'enabled', 0, 0, 4],
        ['audit', 'enabled', 0, 4, 0],
      ],
    );
    assert.ok(statusJson.body.endpoints[0].lastSuccessAt, "default's last success");
    assert.equal(statusJson.body.endpoints[1].lastSuccessAt, null);
    const onlyDefault = await cli(s, 'status', '--endpoint', 'default');
    assert.equal(onlyDefault.code, 0, onlyDefault.stdout);
    assert.match(onlyDefault.stdout, /endpoint default\s+│ enabled, 0 pending, 0 failed, none pending, last success /);
    assert.doesNotMatch(onlyDefault.stdout, /endpoint audit/);
    assert.equal((await cli(s, 'status', '--endpoint', 'Not A Name')).code, 2);

    const listed = await json(s, 'outbox', 'list', '--endpoint', 'audit');
    assert.deepEqual(
      listed.body.map((e: { endpoint: string; eventType: string }) => [e.endpoint, e.eventType]).reverse(),
      ORDER_LIFE.map((t) => ['audit', t]),
    );
    const table = await cli(s, 'outbox', 'list', '--order', order);
    assert.match(table.stdout, /event id\s+│ endpoint\s+│ order/);

    audit.respond = (_req, res) => res.end('ok');
    const replayed = await json(s, 'replay', '--failed', '--endpoint', 'default');
    assert.equal(replayed.body.replayed, 0, 'default has none failed');
    const audited = await cli(s, 'replay', '--failed', '--endpoint', 'audit');
    assert.match(audited.stdout, /replay: 4 event\(s\) back to pending \(failed events to endpoint audit\)/);
    await waitFor(async () => (await rowsOf(s, 'audit')).every((r) => r.status === 'delivered'), { what: 'audit replayed and delivered' });
    assert.equal(s.receiver.requests.length, 4, 'default got nothing again');

    const metrics = await waitFor(
      async () => {
        const text = await get(port, '/metrics');
        return text.includes('order_webhooks_events_failed{endpoint="audit"} 0') && text;
      },
      { what: 'events_failed of audit back to 0' },
    );
    assert.match(metrics, /^order_webhooks_attempts_total\{endpoint="default",outcome="2xx"\} 4$/m);
    assert.match(metrics, /^order_webhooks_attempts_total\{endpoint="audit",outcome="http_status"\} 8$/m);
    assert.match(metrics, /^order_webhooks_attempts_total\{endpoint="audit",outcome="2xx"\} 4$/m);
    assert.match(metrics, /^order_webhooks_events_total\{endpoint="audit",event_type="OrderSigned",outcome="failed"\} 1$/m);
    assert.match(metrics, /^order_webhooks_request_duration_seconds_count\{endpoint="audit"\} 12$/m);
    assert.match(metrics, /^order_webhooks_events_created_total\{endpoint="audit"\} 4$/m);
    assert.match(metrics, /^order_webhooks_events_created_total\{endpoint="default"\} 4$/m);
    assert.match(metrics, /^order_webhooks_requests_in_flight\{endpoint="audit"\} 0$/m);
    const page = await get(port, '/');
    assert.match(page, /data-endpoint="default"><dt>Endpoint default<\/dt>/);
    assert.match(page, /data-endpoint="audit"><dt>Endpoint audit<\/dt>/);
    const filtered = await get(port, '/api/events?endpoint=audit');
    assert.equal((JSON.parse(filtered).events as { endpoint: string }[]).filter((e) => e.endpoint !== 'audit').length, 0);

    const check = await cli(s, 'check', '--send');
    assert.equal(check.code, 0, check.stdout);
    assert.match(check.stdout, /^ok\s+send\s+test request answered 200/m);
    assert.match(check.stdout, /^ok\s+send audit\s+test request answered 200/m);
    const tests = (r: Receiver) => r.requests.filter((q) => q.headers['x-order-webhooks-check'] === '1').length;
    assert.deepEqual([tests(s.receiver), tests(audit)], [1, 1], 'one test request each');
  });
});
