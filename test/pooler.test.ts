import assert from 'node:assert/strict';
import { after, describe } from 'node:test';
import pg from 'pg';
import { run, startService, writeConfig } from './helpers/cli.ts';
import type { TestDatabase } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { type PgBouncer, startPgBouncer } from './helpers/pgbouncer.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';
import { itNeeding } from './helpers/tools.ts';
import { checkSessionConnections } from '../src/schema/pooler.ts';
import { PoolerError } from '../src/errors.ts';

const it = itNeeding('pgbouncer');

describe('connection poolers', () => {
  const stack = stacksClosedAfter();
  const bouncers: PgBouncer[] = [];
  const bouncer = async (...args: Parameters<typeof startPgBouncer>) => {
    const started = await startPgBouncer(...args);
    bouncers.push(started);
    return started;
  };
  after(async () => {
    for (const b of bouncers) await b.stop();
  });

  it('the order app writes through PgBouncer in transaction mode: its changes are captured and delivered', async () => {
    const s = await stack('pooler_app');
    const pgb = await bouncer({ mode: 'transaction' });
    const app = new pg.Pool({ connectionString: pgb.url(s.db.name), max: 4 });
    app.on('error', () => undefined);
    try {
      // Transaction pooling in effect: two clients of the pool run in one server process.
      const [one, two] = [await app.connect(), await app.connect()];
      const pid = async (c: pg.PoolClient) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      assert.equal(await pid(one), await pid(two));
      one.release();
      two.release();

      const viaPooler: TestDatabase = { ...s.db, query: async (sql, params) => (await app.query(sql, params)).rows };
      const ids = await playOrders(viaPooler, 8, 4);
      // A transaction of several statements, and one rolled back, through the pooler too.
      const client = await app.connect();
      try {
        await client.query('BEGIN');
        const { rows } = await client.query<{ id: string }>("INSERT INTO orders (state) VALUES ('created') RETURNING id");
        await client.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [rows[0]!.id]);
        await client.query('COMMIT');
        await client.query('BEGIN');
        await client.query("INSERT INTO orders (state) VALUES ('created')");
        await client.query('ROLLBACK');
      } finally {
        client.release();
      }
      const events = ids.length * ORDER_LIFE.length + 2;
      await s.receiver.waitForCount(events, 60_000);
      await waitFor(async () => (await s.db.query("SELECT 1 FROM order_webhooks.outbox WHERE status = 'delivered'")).length === events, {
        what: `${events} events delivered`,
        timeoutMs: 30_000,
      });
      const check = await checkDeliveries(s.db, s.receiver.requests, ids);
      assert.equal(check.events, events);
      assert.equal(check.duplicates, 0);
    } finally {
      await app.end();
    }
  });

  it('start and migrate refuse a pooler in transaction or statement mode: one line, exit 2; check fails with the same line', async () => {
    const s = await stack('pooler_refused', { startNow: false });
    for (const mode of ['transaction', 'statement'] as const) {
      const pgb = await bouncer({ mode, ignoreStartupParameters: ['options'] });
      const config = writeConfig({ ...s.config, database: { ...s.config.database, url: pgb.url(s.db.name) } });
      const result = await run(['start', '--config', config]);
      assert.equal(result.code, 2, `${mode}: ${result.stderr}`);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(
        result.stderr,
        /^order-webhooks: start: database\.url: the connections are shared with other clients between transactions .*session of its own/,
      );
      // check judges the same facts by the same rule: it fails, with start's line, and on nothing else.
      const checked = await run(['check', '--config', config]);
      assert.equal(checked.code, 1, `${mode}: ${checked.stdout}`);
      const failed = checked.stdout.split('\n').filter((l) => l.startsWith('failed'));
      assert.deepEqual(
        failed.map((l) => l.split(/\s{2,}/)),
        [['failed', 'pooler', result.stderr.trim().replace(/^order-webhooks: start: /, '')]],
        mode,
      );
      await assert.rejects(checkSessionConnections(pgb.url(s.db.name)), PoolerError);
      // migrate too: its advisory lock would stay behind on a pooled server connection.
      const migrated = await run(['migrate', '--config', config]);
      assert.equal(migrated.code, 2, `${mode}: ${migrated.stderr}`);
      assert.match(migrated.stderr, /^order-webhooks: migrate: database\.url: the connections are shared [^\n]*\n$/);
    }
    await checkSessionConnections(s.db.url); // directly: a session of its own
    const direct = await run(['check', '--config', s.configPath]);
    assert.equal(direct.code, 0, direct.stdout);
    assert.match(direct.stdout, /^ok\s+pooler\s+each connection is a session of its own$/m);
  });

  it('the check tells a transaction-mode pool with several idle server connections, in either order of reuse', async () => {
    const s = await stack('pooler_warm', { startNow: false });
    for (const roundRobin of [false, true]) {
      const pgb = await bouncer({ mode: 'transaction', roundRobin });
      // Three server connections, opened at once by three transactions, then idle in the pool.
      const clients = await Promise.all([1, 2, 3].map(async () => new pg.Client({ connectionString: pgb.url(s.db.name) })));
      await Promise.all(clients.map((c) => c.connect()));
      await Promise.all(clients.map((c) => c.query('BEGIN')));
      const pids = await Promise.all(clients.map(async (c) => (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid));
      assert.equal(new Set(pids).size, 3);
      await Promise.all(clients.map((c) => c.query('COMMIT')));
      await Promise.all(clients.map((c) => c.end()));
      await assert.rejects(checkSessionConnections(pgb.url(s.db.name)), PoolerError, `server_round_robin = ${roundRobin}`);
    }
  });

  it('a session-mode pool passes; it must let the startup parameter "options" through or ignore it', async () => {
    const s = await stack('pooler_session', { startNow: false });
    const strict = await bouncer({ mode: 'session' });
    const refused = await run([
      'start',
      '--config',
      writeConfig({ ...s.config, database: { ...s.config.database, url: strict.url(s.db.name) } }),
    ]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^order-webhooks: start: database\.url: the server refused the startup parameter "options"[^\n]*\n$/);

    const lenient = await bouncer({ mode: 'session', ignoreStartupParameters: ['options'] });
    await checkSessionConnections(lenient.url(s.db.name));
    const service = await startService(writeConfig({ ...s.config, database: { ...s.config.database, url: lenient.url(s.db.name) } }));
    try {
      const ids = await playOrders(s.db, 3, 3);
      await s.receiver.waitForCount(ids.length * ORDER_LIFE.length, 60_000);
      await waitFor(
        async () => (await s.db.query("SELECT 1 FROM order_webhooks.outbox WHERE status = 'delivered'")).length === ids.length * 4,
        { what: 'every event delivered', timeoutMs: 30_000 },
      );
      await checkDeliveries(s.db, s.receiver.requests, ids);
    } finally {
      await service.stop();
    }
  });
});
