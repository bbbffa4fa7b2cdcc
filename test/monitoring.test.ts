import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import pg from 'pg';
import { parseConfig } from '../src/config/config.ts';
import { CLAIMS_FAILING_FOR_MS } from '../src/health/model.ts';
import { run, runUntil, type ServiceProcess, startService, writeConfig } from './helpers/cli.ts';
import { insertOrder, serverUrl } from './helpers/db.ts';
import { ORDER_LIFE, playOrder, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';

const SECRET = 'metrics-test-secret-3f9a';
const KEY = 'metrics-test-key-77c1';

/** The port the service's HTTP server listens on, from its log. */
async function httpPort(service: ServiceProcess): Promise<number> {
  await service.waitForLog('"msg":"http listening');
  return Number(/"port":(\d+),"msg":"http listening/.exec(service.output())![1]);
}

/** A GET on a new connection each time (a kept-alive one may be closed by the server as it is reused). */
function get(port: number, path: string): Promise<{ status: number; body: string; type: string | null }> {
  return new Promise((resolve, reject) => {
    const request = httpGet({ host: '127.0.0.1', port, path, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, body, type: response.headers['content-type'] ?? null }));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

/** One sample's value from Prometheus text, e.g. sample(text, 'order_webhooks_attempts_total{endpoint="default",outcome="2xx"}'). */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no sample ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

describe('monitoring', () => {
  const stack = stacksClosedAfter();

  it('/healthz, /readyz and /metrics: counters move as events are delivered, failed attempts at warn, a given-up event at error, no secret', async () => {
    const s = await stack('metrics', { webHook: { secret: SECRET, key: KEY }, startNow: false });
    const configPath = writeConfig({ ...s.config, http: { port: 0 } });
    s.service = await startService(configPath);
    const port = await httpPort(s.service);

    assert.deepEqual(await get(port, '/healthz'), { status: 200, body: 'ok\n', type: 'text/plain; charset=utf-8' });
    const ready = await waitFor(async () => {
      const r = await get(port, '/readyz');
      return r.status === 200 && r;
    });
    assert.equal(ready.body, 'ready: database connected, listener subscribed, claims working\n');
    assert.equal((await get(port, '/nothing')).status, 404);
    const before = await get(port, '/metrics');
    assert.equal(before.status, 200);
    assert.match(before.type!, /^text\/plain; version=0\.0\.4/);
    assert.equal(sample(before.body, 'order_webhooks_attempts_total{endpoint="default",outcome="2xx"}'), 0);
    assert.equal(sample(before.body, 'order_webhooks_enabled'), 1);
    assert.match(before.body, /^process_cpu_user_seconds_total /m, 'default process metrics');
    assert.match(before.body, /^nodejs_eventloop_lag_seconds /m);

    // Three orders delivered; a fourth whose every request gets 500 until it is given up (3 attempts).
    const doomed = randomUUID();
    s.receiver.respond = (request, response) => {
      response.statusCode = JSON.parse(request.body).orderId === doomed ? 500 : 200;
      response.end();
    };
    await s.db.query('INSERT INTO orders (id) VALUES ($1)', [doomed]);
    for (let i = 0; i < 3; i++) await insertOrder(s.db);
    await waitFor(
      async () => {
        const [row] = await s.db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM order_webhooks.outbox WHERE status IN ('delivered', 'failed')",
        );
        return row!.n === 4;
      },
      { what: 'three events delivered and one failed', timeoutMs: 30_000 },
    );

    // The database gauges are cached for a few seconds: poll until they show the failed event.
    const after = await waitFor(
      async () => {
        const text = (await get(port, '/metrics')).body;
        return sample(text, 'order_webhooks_events_failed{endpoint="default"}') === 1 && text;
      },
      { what: 'events_failed 1 in /metrics' },
    );
    assert.equal(sample(after, 'order_webhooks_attempts_total{endpoint="default",outcome="2xx"}'), 3);
    assert.equal(sample(after, 'order_webhooks_attempts_total{endpoint="default",outcome="http_status"}'), 3);
    assert.equal(sample(after, 'order_webhooks_attempts_total{endpoint="default",outcome="timeout"}'), 0);
    assert.equal(sample(after, 'order_webhooks_changes_total'), 4);
    assert.equal(sample(after, 'order_webhooks_events_created_total{endpoint="default"}'), 4);
    assert.equal(sample(after, 'order_webhooks_requests_in_flight{endpoint="default"}'), 0);
    assert.equal(sample(after, 'order_webhooks_events_total{endpoint="default",event_type="OrderCreated",outcome="delivered"}'), 3);
    assert.equal(sample(after, 'order_webhooks_events_total{endpoint="default",event_type="OrderCreated",outcome="failed"}'), 1);
    assert.equal(sample(after, 'order_webhooks_events_total{endpoint="default",event_type="OrderAccepted",outcome="delivered"}'), 0);
    assert.equal(sample(after, 'order_webhooks_request_duration_seconds_count{endpoint="default"}'), 6);
    assert.equal(sample(after, 'order_webhooks_delivery_lag_seconds_count{endpoint="default"}'), 3);
    // Lag from the change's time: positive, and under the test's length.
    const lagSum = sample(after, 'order_webhooks_delivery_lag_seconds_sum{endpoint="default"}');
    assert.ok(lagSum > 0 && lagSum < 3 * 60, `lag sum ${lagSum}`);
    assert.equal(sample(after, 'order_webhooks_events_pending{endpoint="default"}'), 0);
    assert.equal(sample(after, 'order_webhooks_journal_backlog'), 0);
    assert.equal(sample(after, 'order_webhooks_oldest_pending_age_seconds'), 0);
    assert.equal(sample(after, 'order_webhooks_listener_connected'), 1);
    assert.equal(sample(after, 'order_webhooks_listener_reconnects_total'), 0);
    assert.doesNotMatch(after, new RegExp(doomed), 'no order id in a label');

    const lines = s.service
      .output()
      .split('\n')
      .filter((l) => l.includes('delivery attempt failed'));
    const logged = lines.map((l) => JSON.parse(l));
    assert.deepEqual(
      logged.map((l) => [l.level, l.orderId, l.attempt, l.kind, l.reason]),
      [
        [40, doomed, 1, 'http_status', 'http: 500 Internal Server Error'],
        [40, doomed, 2, 'http_status', 'http: 500 Internal Server Error'],
        [50, doomed, 3, 'http_status', 'http: 500 Internal Server Error'],
      ],
    );
    assert.ok(logged.every((l) => /^[0-9a-f-]{36}$/.test(l.eventId)));
    for (const text of [after, s.service.output()]) {
      assert.ok(!text.includes(SECRET) && !text.includes(KEY), 'no secret or key in /metrics or the logs');
    }
  });

  it('/readyz turns 503 when the database goes away and 200 when it is back; /healthz stays 200', async () => {
    const s = await stack('readyz', { startNow: false });
    const configPath = writeConfig({ ...s.config, http: { port: 0, host: '127.0.0.1' } });
    s.service = await startService(configPath);
    const port = await httpPort(s.service);
    await waitFor(async () => (await get(port, '/readyz')).status === 200, { what: '/readyz 200' });

    const admin = new pg.Client({ connectionString: serverUrl() });
    await admin.connect();
    try {
      // Away: the service's connections cut, and no new connection let in.
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(s.db.name)} ALLOW_CONNECTIONS false`);
      // Again until none is left: one that was being opened as connections were shut off may have
      // got in unnamed, and be named only once it is in.
      await waitFor(
        async () => {
          const killed = await admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name LIKE 'order-webhooks%'",
            [s.db.name],
          );
          return killed.rowCount === 0;
        },
        { what: 'no service connection left' },
      );
      const down = await waitFor(
        async () => {
          const r = await get(port, '/readyz');
          return r.status === 503 && r;
        },
        { what: '/readyz 503' },
      ).catch((error: Error) => {
        throw new Error(`${error.message}\nservice output:\n${s.service!.output().slice(-3000)}`);
      });
      // Whichever the probe saw first: its query cut (57P01) or refused (55000), or the listener down.
      assert.match(down.body, /^not ready: (database unreachable: .*\((57P01|55000)\)|listener not subscribed: )/);
      // While the database stays away, it says so.
      await waitFor(async () => /^not ready: database unreachable: .*\(55000\)/.test((await get(port, '/readyz')).body), {
        what: '/readyz: database not accepting connections',
      }).catch((error: Error) => {
        throw new Error(`${error.message}\nservice output:\n${s.service!.output().slice(-3000)}`);
      });
      assert.equal((await get(port, '/healthz')).status, 200);
      const metrics = await waitFor(async () => {
        const text = (await get(port, '/metrics')).body;
        return sample(text, 'order_webhooks_listener_connected') === 0 && text;
      });
      assert.equal(sample(metrics, 'order_webhooks_listener_reconnects_total'), 1);
    } finally {
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(s.db.name)} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    const up = await waitFor(
      async () => {
        const r = await get(port, '/readyz');
        return r.status === 200 && r;
      },
      { what: '/readyz 200 again', timeoutMs: 30_000 },
    );
    assert.equal(up.body, 'ready: database connected, listener subscribed, claims working\n');
    // And it delivers again.
    await insertOrder(s.db);
    await s.receiver.waitForCount(1);
  });

  it('/readyz turns 503 once claims have failed for a while (a grant revoked), and 200 again once they work', async () => {
    const s = await stack('readyz_claims', { startNow: false });
    // A service role with exactly the grants `start` needs, so that a REVOKE makes its claims fail for real.
    const role = `ow_test_${randomBytes(4).toString('hex')}_claims`;
    const quoted = pg.escapeIdentifier(role);
    await s.db.query(`CREATE ROLE ${quoted} LOGIN`);
    try {
      const grants = await run(['migrate', '--print-grants', role, '--config', s.configPath]);
      assert.equal(grants.code, 0, grants.stderr);
      await s.db.query(grants.stdout);
      const url = new URL(s.db.url);
      url.username = role;
      const configPath = writeConfig({ ...s.config, database: { ...s.config.database, url: url.toString() }, http: { port: 0 } });
      s.service = await startService(configPath);
      const port = await httpPort(s.service);
      await waitFor(async () => (await get(port, '/readyz')).status === 200, { what: '/readyz 200' });

      const revokedAt = Date.now();
      await s.db.query(`REVOKE SELECT, UPDATE, DELETE ON order_webhooks.change FROM ${quoted}`);
      await insertOrder(s.db); // captured (the trigger writes as its owner), but the service cannot claim it
      const down = await waitFor(
        async () => {
          const r = await get(port, '/readyz');
          return r.status === 503 && r;
        },
        { what: '/readyz 503 with claims failing', timeoutMs: 45_000, intervalMs: 200 },
      );
      assert.match(down.body, /^not ready: claims failing: \d+ in a row since \S+Z: permission denied for table change/);
      assert.ok(Date.now() - revokedAt >= CLAIMS_FAILING_FOR_MS, 'not before they have failed for a while');
      assert.equal((await get(port, '/healthz')).status, 200, 'alive: a restart would not help');
      assert.equal(s.receiver.requests.length, 0);

      await s.db.query(`GRANT SELECT, UPDATE, DELETE ON order_webhooks.change TO ${quoted}`);
      const up = await waitFor(
        async () => {
          const r = await get(port, '/readyz');
          return r.status === 200 && r;
        },
        { what: '/readyz 200 again', timeoutMs: 30_000 },
      );
      assert.equal(up.body, 'ready: database connected, listener subscribed, claims working\n');
      await s.receiver.waitForCount(1);
    } finally {
      await s.service?.stop();
      s.service = undefined;
      await s.db.query(`DROP OWNED BY ${quoted}`);
      await s.db.query(`DROP ROLE ${quoted}`);
    }
  });

  it('/metrics and `status --json` show the same counts in the middle of an outage: pending (those behind their heads too), failed, journal', async () => {
    const s = await stack('metrics_outage', { startNow: false });
    // The receiver is down: each order's head is answered 503 with Retry-After an hour (its later
    // events wait behind it, with no time), and one order's events are given up (500, no Retry-After).
    const doomed = randomUUID();
    s.receiver.respond = (request, response) => {
      if (JSON.parse(request.body).orderId === doomed) response.statusCode = 500;
      else {
        response.statusCode = 503;
        response.setHeader('Retry-After', '3600');
      }
      response.end();
    };
    s.service = await startService(writeConfig({ ...s.config, http: { port: 0 } }));
    const port = await httpPort(s.service);
    await playOrder(s.db, doomed);
    await playOrders(s.db, 3);
    const events = ORDER_LIFE.length;
    await waitFor(
      async () => {
        const [row] = await s.db.query<{ failed: number; heads: number; waiting: number }>(
          `SELECT count(*) FILTER (WHERE status = 'failed')::int AS failed,
                  count(*) FILTER (WHERE status = 'pending' AND attempts > 0 AND next_attempt_at > now() + interval '30 minutes')::int AS heads,
                  count(*) FILTER (WHERE status = 'pending' AND next_attempt_at IS NULL)::int AS waiting
             FROM order_webhooks.outbox`,
        );
        return row!.failed === events && row!.heads === 3 && row!.waiting === 3 * (events - 1);
      },
      { what: 'the outage: one order failed, three heads waiting an hour with their later events behind them', timeoutMs: 30_000 },
    );
    // Two changes left in the journal, as while another instance holds their claim.
    const client = await s.db.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string }>("INSERT INTO orders (state) VALUES ('created'), ('created') RETURNING id");
      await client.query("UPDATE order_webhooks.change SET claimed_until = now() + interval '1 hour' WHERE order_id = ANY($1)", [
        rows.map((r) => r.id),
      ]);
      await client.query('COMMIT');
    } finally {
      client.release();
    }

    // A reading of the gauges taken after the journal rows came (they are cached for a few seconds).
    const metrics = await waitFor(
      async () => {
        const text = (await get(port, '/metrics')).body;
        return sample(text, 'order_webhooks_journal_backlog') === 2 && text;
      },
      { what: 'journal_backlog 2 in /metrics' },
    );
    const status = await run(['status', '--json', '--config', s.configPath]);
    assert.equal(status.code, 1, 'failed events need attention');
    const body = JSON.parse(status.stdout);
    assert.deepEqual(
      {
        pending: sample(metrics, 'order_webhooks_events_pending{endpoint="default"}'),
        failed: sample(metrics, 'order_webhooks_events_failed{endpoint="default"}'),
        journal: sample(metrics, 'order_webhooks_journal_backlog'),
      },
      { pending: body.outbox.pending, failed: body.outbox.failed, journal: body.journalBacklog },
    );
    assert.deepEqual([body.outbox.pending, body.outbox.failed, body.journalBacklog], [3 * events, events, 2]);
    const age = sample(metrics, 'order_webhooks_oldest_pending_age_seconds');
    assert.ok(Math.abs(age - body.lagSeconds) <= 6, `oldest pending age ${age} s in /metrics, lag ${body.lagSeconds} s in status`);
    assert.deepEqual(
      body.problems.map((p: { code: string }) => p.code),
      ['events_failed'],
    );
  });

  it('webHook.enabled false: runs idle until SIGTERM, ready and saying webhooks are disabled, the backlog in /metrics, nothing sent', async () => {
    const s = await stack('idle', { webHook: { enabled: false }, startNow: false });
    await insertOrder(s.db);
    const configPath = writeConfig({ ...s.config, http: { port: 0 } });
    const service = await startService(configPath);
    s.service = service;
    const port = await httpPort(service);
    assert.equal((await get(port, '/healthz')).status, 200);
    assert.deepEqual(await get(port, '/readyz'), {
      status: 200,
      body: 'ready: webhooks are disabled (webHook.enabled is false): nothing is sent, changes wait in the journal\n',
      type: 'text/plain; charset=utf-8',
    });
    const metrics = (await get(port, '/metrics')).body;
    assert.equal(sample(metrics, 'order_webhooks_enabled'), 0);
    assert.equal(sample(metrics, 'order_webhooks_journal_backlog'), 1);
    assert.ok(sample(metrics, 'order_webhooks_oldest_pending_age_seconds') >= 0);
    // Still running a while later (not exited, not restarting): the journal has kept the change.
    await insertOrder(s.db);
    await waitFor(async () => sample((await get(port, '/metrics')).body, 'order_webhooks_journal_backlog') === 2, {
      what: 'journal_backlog 2',
    });
    assert.equal(service.child.exitCode, null);
    assert.equal(s.receiver.requests.length, 0);
    assert.deepEqual(await service.stop(), { code: 0, signal: null });
    assert.equal((await s.db.query('SELECT count(*)::int AS n FROM order_webhooks.change'))[0]!.n, 2);
  });

  it('webHook.enabled false without http: still runs until SIGTERM, then exits 0', async () => {
    const configPath = writeConfig({ webHook: { enabled: false }, database: { url: 'postgres://x@127.0.0.1:1/none' } });
    const result = await runUntil(['start', '--config', configPath], '"msg":"started"');
    assert.deepEqual([result.code, result.signal], [0, null]);
    assert.match(result.stdout, /running idle until stopped/);
  });

  it('a port in use is one line and exit 2', async () => {
    const s = await stack('port_in_use', { startNow: false });
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const result = await run(['start', '--config', writeConfig({ ...s.config, http: { port } })]);
      assert.equal(result.code, 2, result.stdout + result.stderr);
      assert.equal(result.stderr, `order-webhooks: start: http: cannot listen on 127.0.0.1:${port}: the port is in use (EADDRINUSE)\n`);
    } finally {
      blocker.close();
    }
  });

  it('http and retention config: defaults and one-line errors', () => {
    const env = { DATABASE_URL: 'postgres://x@h/db' };
    const defaults = parseConfig({}, env);
    assert.equal(defaults.http, undefined, 'off unless configured');
    assert.deepEqual(defaults.retention, { delivered: 30 * 24 * 3600 * 1000, failed: null });
    assert.deepEqual(parseConfig({ http: { port: 9187 } }, env).http, { port: 9187, host: '127.0.0.1', ui: false });
    assert.deepEqual(parseConfig({ retention: { delivered: null, failed: 'P7D' } }, env).retention, {
      delivered: null,
      failed: 7 * 24 * 3600 * 1000,
    });
    assert.throws(() => parseConfig({ http: { port: 70000 } }, env), /^ConfigError: http\.port: /);
    assert.throws(() => parseConfig({ http: {} }, env), /^ConfigError: http\.port: expected number/);
    assert.throws(
      () => parseConfig({ retention: { delivered: '30 days' } }, env),
      /^ConfigError: retention\.delivered: "30 days" is not an ISO-8601/,
    );
    assert.throws(() => parseConfig({ retention: { kept: 'P1D' } }, env), /^ConfigError: retention\.kept: unknown key/);
  });
});
