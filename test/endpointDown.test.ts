// A receiver that goes down, end to end with the real service (two instances) and a real receiver:
// the circuit breaker opens after `failures` unwell failures, one probe per interval goes for every
// instance together, no event uses up its retries meanwhile, a restart keeps the state, and a probe
// that succeeds brings every waiting order back at once, in order. A 4xx never opens it. Pause and
// resume from the command line and from SQL.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { writeFileSync } from 'node:fs';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { startReceiver } from './helpers/receiver.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { insertOrder } from './helpers/db.ts';
import type { Received } from './helpers/receiver.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';
import { call } from './helpers/page.ts';

interface StateRow {
  status: string;
  failures: number;
  next_probe_at: Date | null;
}

const state = async (db: { query: (sql: string) => Promise<any[]> }): Promise<StateRow | undefined> =>
  (await db.query("SELECT status, failures, next_probe_at FROM order_webhooks.endpoint_states WHERE endpoint = 'default'"))[0];

/** Changes waiting in the journal plus events pending in the outbox. */
const waiting = async (db: { query: (sql: string) => Promise<any[]> }): Promise<number> =>
  (
    await db.query(
      "SELECT (SELECT count(*) FROM order_webhooks.change)::int + (SELECT count(*) FROM order_webhooks.outbox WHERE status = 'pending')::int AS n",
    )
  )[0].n;

const answer503 = (_req: Received, res: import('node:http').ServerResponse) => {
  res.statusCode = 503;
  res.end();
};

describe('endpoint down: circuit breaker', () => {
  const stack = stacksClosedAfter();

  it('opens after the failures, probes once per interval for two instances, keeps retries and its state across a restart, and resumes in order', async () => {
    const s = await stack('breaker_open', {
      webHook: {
        // An instance killed while it holds the probe keeps it for requestTimeout and 5 s: 10 s here.
        requestTimeout: 'PT5S',
        retry: { delays: ['PT0.2S', 'PT0.2S'] },
        circuitBreaker: { failures: 4, probeInterval: 'PT1S', maxProbeInterval: 'PT1S' },
      },
    });
    const second = await startService(s.configPath);
    try {
      s.receiver.respond = answer503;
      const ids = await playOrders(s.db, 6);
      await waitFor(async () => (await state(s.db))?.status === 'down', { what: 'the breaker open', timeoutMs: 20_000 });
      // Requests already on the wire when it opened come back; from then on, only probes.
      const from = Date.now() + 1500;
      await waitFor(() => s.receiver.requests.filter((r) => r.at > from).length >= 4, { what: '4 probes', timeoutMs: 20_000 });
      const probes = s.receiver.requests.filter((r) => r.at > from).map((r) => r.at);
      const gaps = probes.slice(1).map((at, i) => at - probes[i]!);
      // One per interval (1 s) for both instances: never two close together.
      assert.ok(
        gaps.every((gap) => gap >= 800),
        `probe gaps ${gaps.join(', ')} ms`,
      );
      // Far more attempts than the retry schedule allows (3 per event) were refused or free: none failed.
      const events = await outbox(s.db);
      assert.equal(await waiting(s.db), 6 * ORDER_LIFE.length, 'every event waits, in the journal or the outbox');
      assert.equal(events.filter((e) => e.status === 'failed').length, 0);
      const counted = await s.db.query<{ max: number }>('SELECT max(attempts - free_attempts)::int AS max FROM order_webhooks.outbox');
      assert.ok(counted[0]!.max <= 3, `counted attempts ${counted[0]!.max}`);

      // A restart keeps the state: the new instances send nothing but the probe.
      await second.kill();
      await s.service!.kill();
      const before = s.receiver.requests.length;
      await s.start();
      assert.equal((await state(s.db))?.status, 'down');
      const restartedAt = Date.now();
      await waitFor(() => s.receiver.requests.length >= before + 2, { what: 'probes after the restart', timeoutMs: 20_000 });
      const afterRestart = s.receiver.requests.slice(before).map((r) => r.at);
      assert.ok(afterRestart[1]! - afterRestart[0]! >= 800, `gap after restart ${afterRestart[1]! - afterRestart[0]!} ms`);
      assert.ok(afterRestart[0]! >= restartedAt - 100);

      // The receiver is back: the next probe succeeds and everything goes out, each order in order.
      s.receiver.respond = (_req, res) => res.end('ok');
      await waitFor(async () => (await waiting(s.db)) === 0, { what: 'every event delivered', timeoutMs: 30_000 });
      assert.equal((await state(s.db))?.status, 'up');
      const check = await checkDeliveries(s.db, s.receiver.requests, ids);
      assert.equal(check.events, 6 * ORDER_LIFE.length);
    } finally {
      await second.kill();
    }
  });

  it('per endpoint: with two endpoints, one down, its breaker opens and the other delivers everything; back up, the first gets all in order', async () => {
    const s = await stack('breaker_two', {
      startNow: false,
      webHook: {
        retry: { delays: ['PT0.2S', 'PT0.2S'] },
        circuitBreaker: { failures: 3, probeInterval: 'PT1S', maxProbeInterval: 'PT1S' },
      },
    });
    const billing = await startReceiver('/billing');
    try {
      s.config = { ...s.config, webHooks: [{ name: 'billing', endpoint: billing.url, retry: { delays: ['PT0.2S'] } }] };
      writeFileSync(s.configPath, JSON.stringify(s.config));
      s.receiver.respond = answer503;
      await s.start();
      const ids = await playOrders(s.db, 5);
      await waitFor(async () => (await state(s.db))?.status === 'down', { what: 'default down', timeoutMs: 20_000 });
      // The healthy endpoint gets every event meanwhile, and its breaker stays up.
      await billing.waitForCount(5 * ORDER_LIFE.length);
      const billingState = await s.db.query<{ status: string }>(
        "SELECT status FROM order_webhooks.endpoint_states WHERE endpoint = 'billing'",
      );
      assert.equal(billingState[0]?.status ?? 'up', 'up');
      const status = JSON.parse((await run(['status', '--json', '--config', s.configPath])).stdout);
      assert.deepEqual(status.endpoints.map((e: { endpoint: string; status: string }) => [e.endpoint, e.status]).sort(), [
        ['billing', 'up'],
        ['default', 'down'],
      ]);
      s.receiver.respond = (_req, res) => res.end('ok');
      await waitFor(async () => (await waiting(s.db)) === 0, { what: 'every event of both delivered', timeoutMs: 30_000 });
      assert.equal((await state(s.db))?.status, 'up');
      const rows = await s.db.query<{ status: string }>("SELECT status FROM order_webhooks.outbox WHERE status <> 'delivered'");
      assert.deepEqual(rows, []);
      for (const id of ids) {
        const types = (r: { body: string }[]) =>
          r
            .map((x) => JSON.parse(x.body))
            .filter((b) => b.orderId === id)
            .map((b) => b.eventType);
        const firstArrivals = (list: { body: string; headers: Record<string, unknown> }[]) => {
          const seen = new Set<string>();
          return list.filter((r) => {
            const e = r.headers['x-event-id'] as string;
            if (seen.has(e)) return false;
            seen.add(e);
            return true;
          });
        };
        assert.deepEqual(types(firstArrivals(s.receiver.requests)), ORDER_LIFE, `default, order ${id}`);
        assert.deepEqual(types(firstArrivals(billing.requests)), ORDER_LIFE, `billing, order ${id}`);
      }
    } finally {
      await billing.close();
    }
  });

  it('a lone endpoint with nothing pending in the outbox still gets its probe: one waiting change moves there for it', async () => {
    // No retries: the failures that open the breaker are given up at once, so the outbox holds nothing
    // pending, and the changes made while it is down wait in the journal.
    const s = await stack('breaker_lone', {
      webHook: { retry: { delays: [] }, circuitBreaker: { failures: 2, probeInterval: 'PT1S', maxProbeInterval: 'PT1S' } },
    });
    s.receiver.respond = answer503;
    for (let n = 0; n < 2; n++) await insertOrder(s.db);
    await waitFor(async () => (await state(s.db))?.status === 'down', { what: 'the breaker open', timeoutMs: 20_000 });
    const waitingIds = [await insertOrder(s.db), await insertOrder(s.db), await insertOrder(s.db)];
    const pending = async () =>
      (await s.db.query<{ n: number }>("SELECT count(*)::int AS n FROM order_webhooks.outbox WHERE status = 'pending'"))[0]!.n;
    assert.equal((await outbox(s.db)).filter((e) => e.status === 'failed').length, 2);
    s.receiver.respond = (_req, res) => res.end('ok');
    // A probe needs an event: one change moves from the journal, the probe succeeds, all go out.
    await waitFor(async () => (await waiting(s.db)) === 0, { what: 'the waiting changes delivered', timeoutMs: 30_000 });
    assert.equal(await pending(), 0);
    assert.equal((await state(s.db))?.status, 'up');
    const delivered = new Set(s.receiver.requests.map((r) => JSON.parse(r.body).orderId));
    for (const id of waitingIds) assert.ok(delivered.has(id), `order ${id} delivered`);
  });

  it('an instance killed with its probe on the wire holds the probe for requestTimeout and 5 s, not a whole lease', async () => {
    const s = await stack('breaker_probe_killed', {
      webHook: {
        requestTimeout: 'PT4S',
        leaseTimeout: 'PT1M',
        retry: { delays: ['PT0.2S', 'PT0.2S'] },
        circuitBreaker: { failures: 2, probeInterval: 'PT1S', maxProbeInterval: 'PT1S' },
      },
    });
    s.receiver.respond = answer503;
    for (let n = 0; n < 3; n++) await insertOrder(s.db);
    await waitFor(async () => (await state(s.db))?.status === 'down', { what: 'the breaker open', timeoutMs: 20_000 });
    // The receiver keeps every request on the wire from now on, the probe's too: the instance dies
    // holding the probe. (A request or two may still go out before the instance reads that the
    // breaker opened, so wait for the probe's claim, not for the next request.)
    const hung = s.receiver.requests.length;
    s.receiver.respond = () => undefined;
    const holder = async () =>
      (await s.db.query<{ by: string | null }>("SELECT probe_by AS by FROM order_webhooks.endpoint_state WHERE endpoint = 'default'"))[0]
        ?.by;
    await waitFor(async () => s.receiver.requests.length > hung && (await holder()) !== null, {
      what: 'the probe claimed and on the wire',
      timeoutMs: 20_000,
    });
    await s.service!.kill();
    s.receiver.respond = (_req, res) => res.end('ok');
    const before = s.receiver.requests.length;
    await s.start();
    const restartedAt = Date.now();
    // Held for a whole lease (1 min), no probe would go for a minute.
    await waitFor(() => s.receiver.requests.length > before, { what: 'a probe from the new instance', timeoutMs: 30_000 });
    assert.ok(Date.now() - restartedAt < 30_000);
    await waitFor(async () => (await state(s.db))?.status === 'up', { what: 'the endpoint up again', timeoutMs: 20_000 });
  });

  it('a 4xx other than 408/429 never opens it', async () => {
    const s = await stack('breaker_4xx', {
      webHook: { retry: { delays: ['PT0.1S'] }, circuitBreaker: { failures: 2, probeInterval: 'PT5S' } },
    });
    s.receiver.respond = (_req, res) => {
      res.statusCode = 422;
      res.end();
    };
    await playOrders(s.db, 3);
    await waitFor(async () => (await outbox(s.db)).filter((e) => e.status === 'failed').length === 3 * ORDER_LIFE.length, {
      what: 'every event failed on its own 422s',
      timeoutMs: 30_000,
    });
    // 24 failures in a row, 12 times the threshold, and the endpoint is up.
    assert.ok(s.receiver.requests.length >= 3 * ORDER_LIFE.length * 2);
    assert.equal((await state(s.db))?.status ?? 'up', 'up');
  });
});

describe('pause and resume', () => {
  const stack = stacksClosedAfter();

  for (const via of ['cli', 'sql'] as const) {
    it(`from ${via === 'cli' ? 'the command line' : 'SQL'}: a paused endpoint gets nothing, its events wait; resumed, all go out in order`, async () => {
      const s = await stack(`pause_${via}`);
      if (via === 'cli') {
        const paused = await run(['pause', '--endpoint', 'default', '--config', s.configPath]);
        assert.equal(paused.code, 0, paused.stderr);
        assert.match(paused.stdout, /endpoint default is paused/);
      } else {
        await s.db.query("SELECT order_webhooks.pause_endpoint('default')");
      }
      assert.equal((await state(s.db))?.status, 'paused');
      // The running instance sees it within its next read of the state (a second).
      await waitFor(() => s.service!.output().includes('endpoint default is paused'), { what: 'the service to see the pause' });
      const ids = await playOrders(s.db, 3);
      assert.equal(await waiting(s.db), 3 * ORDER_LIFE.length);
      const status = await run(['status', '--json', '--config', s.configPath]);
      assert.equal(status.code, 1, 'paused needs attention');
      const report = JSON.parse(status.stdout);
      assert.deepEqual(
        report.endpoints.map((e: { endpoint: string; status: string }) => [e.endpoint, e.status]),
        [['default', 'paused']],
      );
      // Nothing went out while paused: every request comes after the resume.
      assert.equal(s.receiver.requests.length, 0);
      const resumedAt = Date.now();
      if (via === 'cli') {
        const resumed = await run(['resume', '--config', s.configPath]);
        assert.equal(resumed.code, 0, resumed.stderr);
      } else {
        await s.db.query("SELECT order_webhooks.resume_endpoint('default')");
      }
      await waitFor(async () => (await waiting(s.db)) === 0, { what: 'every event delivered' });
      const check = await checkDeliveries(s.db, s.receiver.requests, ids);
      assert.equal(check.events, 3 * ORDER_LIFE.length);
      assert.ok(s.receiver.requests.every((r) => r.at >= resumedAt));
      assert.equal((await state(s.db))?.status, 'up');
    });
  }

  it('from the web page: asks first, then pauses (CSRF required); /metrics shows paused; resume sends what waited', async () => {
    const s = await stack('pause_page', { startNow: false });
    s.service = await startService(writeConfig({ ...s.config, http: { port: 0, ui: true } }));
    await s.service.waitForLog('"msg":"http listening');
    const port = Number(/"port":(\d+),"msg":"http listening/.exec(s.service.output())![1]);
    const page = await call(port, 'GET', '/');
    assert.match(page.body, /Sending to default/);
    const cookie = (page.headers['set-cookie'] as string[])[0]!.split(';')[0]!;
    const csrf = /name="csrf" value="([0-9a-f]+)"/.exec(page.body)![1]!;
    const post = (body: string) =>
      call(port, 'POST', '/endpoint', { 'Content-Type': 'application/x-www-form-urlencoded', Cookie: cookie }, body);
    assert.equal((await post('endpoint=default&action=pause&confirm=yes')).status, 403, 'no CSRF token');
    const asked = await post(`csrf=${csrf}&endpoint=default&action=pause`);
    assert.equal(asked.status, 200);
    assert.match(asked.body, /Pause endpoint default\?/);
    assert.equal((await state(s.db))?.status ?? 'up', 'up', 'asking changes nothing');
    const done = await post(`csrf=${csrf}&endpoint=default&action=pause&confirm=yes`);
    assert.equal(done.status, 303);
    assert.equal((await state(s.db))?.status, 'paused');
    await waitFor(
      async () => /order_webhooks_endpoint_status\{endpoint="default",status="paused"\} 1/.test((await call(port, 'GET', '/metrics')).body),
      {
        what: '/metrics to show paused',
        timeoutMs: 15_000,
      },
    );
    await waitFor(() => s.service!.output().includes('endpoint default is paused'), { what: 'the service to see the pause' });
    const ids = await playOrders(s.db, 2);
    assert.equal(await waiting(s.db), 2 * ORDER_LIFE.length);
    assert.match((await call(port, 'GET', '/', { Cookie: cookie })).body, /Resume default/);
    assert.equal(s.receiver.requests.length, 0);
    const resumedAt = Date.now();
    assert.equal((await post(`csrf=${csrf}&endpoint=default&action=resume&confirm=yes`)).status, 303);
    await waitFor(async () => (await waiting(s.db)) === 0, { what: 'every event delivered' });
    const check = await checkDeliveries(s.db, s.receiver.requests, ids);
    assert.equal(check.events, 2 * ORDER_LIFE.length);
    assert.ok(s.receiver.requests.every((r) => r.at >= resumedAt));
  });
});
