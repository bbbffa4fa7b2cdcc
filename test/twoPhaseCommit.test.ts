import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { describeWakeUp, effectiveWakeUp, notifyCondition } from '../src/capture/wakeUp.ts';
import { lockKey } from '../src/db.ts';
import { type EmbeddedServer, startEmbeddedPostgres } from '../src/demo/embeddedPostgres.ts';
import { run, writeConfig } from './helpers/cli.ts';
import type { TestDatabase } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { createStack, type Stack } from './helpers/stack.ts';

const CHANNEL = 'order_webhooks_wake';
const WAKE_LOCK = lockKey('order_webhooks', 'wake');
const PREPARE_REFUSED = /cannot PREPARE a transaction that has executed LISTEN, UNLISTEN, or NOTIFY/;

/** One statement in a transaction the way an XA transaction manager ends it: PREPARE, then COMMIT PREPARED. */
async function commitPrepared(db: TestDatabase, sql: string, params: unknown[]): Promise<pg.QueryResultRow[]> {
  const gid = `ow-test-${randomBytes(6).toString('hex')}`;
  const client = await db.pool.connect();
  let rows: pg.QueryResultRow[];
  try {
    await client.query('BEGIN');
    rows = (await client.query(sql, params)).rows;
    await client.query(`PREPARE TRANSACTION '${gid}'`);
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
  // The transaction manager commits from whichever connection it has.
  await db.query(`COMMIT PREPARED '${gid}'`);
  return rows;
}

/** `playOrder`'s four steps, each committed through two-phase commit. */
async function playPreparedOrder(db: TestDatabase): Promise<string> {
  const [row] = await commitPrepared(db, "INSERT INTO orders (state) VALUES ('created') RETURNING id", []);
  const id = row!.id as string;
  await commitPrepared(db, "UPDATE orders SET state = 'accepted' WHERE id = $1", [id]);
  await commitPrepared(db, "UPDATE orders SET due_date = '2027-06-30' WHERE id = $1", [id]);
  await commitPrepared(db, "UPDATE orders SET state = 'signed' WHERE id = $1", [id]);
  return id;
}

/** Counts the trigger's NOTIFYs from now on. */
async function countNotifications(db: TestDatabase): Promise<{ count: () => number; stop: () => Promise<void> }> {
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  let count = 0;
  listener.on('notification', () => count++);
  await listener.query(`LISTEN ${pg.escapeIdentifier(CHANNEL)}`);
  return { count: () => count, stop: () => listener.end() };
}

/** Whether the service holds the wake lock, as it does when idle with the trigger notifying. */
async function serviceIdleOnWakeLock(db: TestDatabase): Promise<boolean> {
  const rows = await db.query(
    `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.mode = 'ExclusiveLock' AND l.granted AND l.objsubid = 1
        AND ((l.classid::bigint << 32) | l.objid::bigint) = $1::bigint AND a.application_name = 'order-webhooks wake' AND a.datname = current_database()`,
    [WAKE_LOCK],
  );
  return rows.length > 0;
}

const delivered = (s: Stack, events: number, timeoutMs = 30_000) =>
  waitFor(
    async () => {
      const [row] = await s.db.query<{ delivered: number }>(
        "SELECT count(*) FILTER (WHERE status = 'delivered')::int AS delivered FROM order_webhooks.outbox",
      );
      return row!.delivered === events;
    },
    { what: `${events} events delivered`, timeoutMs },
  );

describe('wake-up modes', () => {
  it('auto notifies only where no transaction can be prepared; only a forced notify beside 2PC warns', () => {
    assert.equal(effectiveWakeUp('auto', 0), 'notify');
    assert.equal(effectiveWakeUp('auto', 10), 'poll');
    assert.equal(effectiveWakeUp('notify', 10), 'notify');
    assert.equal(effectiveWakeUp('poll', 0), 'poll');
    assert.match(notifyCondition('auto'), /current_setting\('max_prepared_transactions'\) OPERATOR\(pg_catalog\.=\) '0'/);
    for (const [mode, prepared] of [
      ['auto', 0],
      ['auto', 10],
      ['poll', 10],
      ['notify', 0],
    ] as const) {
      assert.equal(describeWakeUp(mode, prepared, 50).warning, undefined, `${mode} with ${prepared}`);
    }
    assert.match(describeWakeUp('notify', 10, 50).warning!, /PREPARE TRANSACTION/);
  });
});

describe('two-phase commit (server with max_prepared_transactions = 10)', () => {
  let server: EmbeddedServer;
  const stacks: Stack[] = [];
  const stack = async (...args: Parameters<typeof createStack>) => {
    const s = await createStack(args[0], { ...args[1], server: server.url() });
    stacks.push(s);
    return s;
  };
  before(async () => {
    server = await startEmbeddedPostgres({ label: 'order-webhooks-2pc', auth: 'trust', settings: { max_prepared_transactions: '10' } });
  });
  after(async () => {
    for (const s of stacks) await s.close();
    await server?.stop();
  });

  it('wakeUp auto: no NOTIFY, every PREPARE succeeds with the service idle, busy and stopped, every change delivered', async () => {
    // With the fallback poll an hour away, only the idle poll can find what is committed while quiet.
    const s = await stack('twopc_auto', { database: { pollInterval: 'PT1H' } });
    assert.match(s.migrated.stdout, /wake-up poll: .*every 50 ms .*max_prepared_transactions = 10/);
    assert.equal(s.migrated.stderr, '');
    assert.match(s.service!.output(), /"wakeUp":"poll"/);
    const notifications = await countNotifications(s.db);
    try {
      const ids: string[] = [];
      // Idle: one order at a time, each delivered (by the idle poll) before the next begins.
      for (let i = 0; i < 3; i++) {
        ids.push(await playPreparedOrder(s.db));
        await delivered(s, ids.length * ORDER_LIFE.length, 10_000);
      }
      assert.equal(await serviceIdleOnWakeLock(s.db), false, 'the service never takes the wake lock here');
      // Busy: prepared order transactions among a stream of ordinary ones.
      const [plain, prepared] = await Promise.all([
        playOrders(s.db, 40, 4),
        Promise.all(Array.from({ length: 4 }, async () => [await playPreparedOrder(s.db), await playPreparedOrder(s.db)])),
      ]);
      ids.push(...plain, ...prepared.flat());
      await delivered(s, ids.length * ORDER_LIFE.length);
      // Stopped: the changes wait in the journal.
      await s.service!.stop();
      for (let i = 0; i < 3; i++) ids.push(await playPreparedOrder(s.db));
      await s.start();
      await delivered(s, ids.length * ORDER_LIFE.length);
      const check = await checkDeliveries(s.db, s.receiver.requests, ids);
      assert.equal(check.events, ids.length * ORDER_LIFE.length);
      assert.equal(check.duplicates, 0);
      assert.equal(notifications.count(), 0, 'the trigger sent no NOTIFY');
    } finally {
      await notifications.stop();
    }
  });

  it('wakeUp notify forced here: migrate warns, and an idle service makes PREPARE fail (what auto avoids)', async () => {
    const s = await stack('twopc_notify', { database: { pollInterval: 'PT1H', wakeUp: 'notify' } });
    assert.match(s.migrated.stdout, /wake-up notify: /);
    assert.match(s.migrated.stderr, /warning: database\.wakeUp is "notify" but max_prepared_transactions = 10/);
    await waitFor(() => serviceIdleOnWakeLock(s.db), { what: 'the service idle on the wake lock' });
    await assert.rejects(playPreparedOrder(s.db), PREPARE_REFUSED);
    assert.deepEqual(await s.db.query('SELECT id FROM orders'), [], 'the order app’s write was rolled back');
  });

  it('switching to auto is one migrate away, and start refuses a config that does not match the trigger', async () => {
    const s = await stack('twopc_switch', { database: { wakeUp: 'notify' }, startNow: false });
    const auto = writeConfig({ ...s.config, database: { ...s.config.database, wakeUp: 'auto' } });
    const refused = await run(['start', '--config', auto]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /installed for another config or release: run `order-webhooks migrate`/);
    const migrated = await run(['migrate', '--config', auto]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /capture trigger installed\nmigrate: wake-up poll: /);
  });
});

describe('wake-up on a server without two-phase commit (max_prepared_transactions = 0)', () => {
  const stacks: Stack[] = [];
  after(async () => {
    for (const s of stacks) await s.close();
  });

  it('wakeUp auto: NOTIFY wakes an idle service at once', async () => {
    const s = await createStack('wake_notify', { database: { pollInterval: 'PT1H' } });
    stacks.push(s);
    const [setting] = await s.db.query<{ n: string }>("SELECT current_setting('max_prepared_transactions') AS n");
    assert.equal(setting!.n, '0', 'the test server allows no prepared transactions');
    assert.match(s.migrated.stdout, /wake-up notify: .*max_prepared_transactions = 0/);
    const notifications = await countNotifications(s.db);
    try {
      for (let i = 1; i <= 3; i++) {
        await waitFor(() => serviceIdleOnWakeLock(s.db), { what: 'the service idle on the wake lock' });
        const before = notifications.count();
        const committed = Date.now();
        await s.db.query("INSERT INTO orders (state) VALUES ('created')");
        await s.receiver.waitForCount(i, 5000);
        assert.ok(s.receiver.requests[i - 1]!.at - committed < 5000);
        await waitFor(() => notifications.count() > before, { what: 'the trigger’s NOTIFY' });
      }
    } finally {
      await notifications.stop();
    }
  });

  it('wakeUp poll: no NOTIFY at all, and the idle poll delivers', async () => {
    const s = await createStack('wake_poll', { database: { pollInterval: 'PT1H', wakeUp: 'poll', idlePollInterval: 'PT0.02S' } });
    stacks.push(s);
    assert.match(s.migrated.stdout, /wake-up poll: .*every 20 ms/);
    const notifications = await countNotifications(s.db);
    try {
      const ids = await playOrders(s.db, 5, 2);
      await delivered(s, 20, 10_000);
      assert.equal((await checkDeliveries(s.db, s.receiver.requests, ids)).duplicates, 0);
      assert.equal(notifications.count(), 0);
      assert.equal(await serviceIdleOnWakeLock(s.db), false);
    } finally {
      await notifications.stop();
    }
  });
});
