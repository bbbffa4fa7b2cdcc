import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { createPool, lockKey } from '../src/db.ts';
import { createLogger } from '../src/log.ts';
import { Retention } from '../src/outbox/retention.ts';
import { startService, writeConfig } from './helpers/cli.ts';
import type { TestDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';

const DAY = 24 * 3600 * 1000;

/**
 * Outbox rows as they look after delivery: `count` events of one kind, each with one attempt row
 * per attempt: the first `createdAgo` ago, the last `lastAttemptAgo` ago.
 */
async function addEvents(
  db: TestDatabase,
  label: string,
  count: number,
  { status, createdAgo, lastAttemptAgo }: { status: 'pending' | 'delivered' | 'failed'; createdAgo: string; lastAttemptAgo: string },
): Promise<void> {
  await db.query(
    `WITH o AS (
       INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, created_at, delivered_at)
       SELECT i, $1 || '-' || i, 'OrderCreated', '{}', $2, 2,
              CASE WHEN $2 = 'pending' THEN now() + interval '1 hour' END,
              now() - $3::interval, CASE WHEN $2 = 'delivered' THEN now() - $4::interval END
         FROM generate_series(1, $5::int) i
       RETURNING id, event_id)
     INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status)
     SELECT o.id, o.event_id, a, now() - CASE a WHEN 1 THEN $3::interval ELSE $4::interval END, 5, 200
       FROM o, generate_series(1, 2) a`,
    [label, status, createdAgo, lastAttemptAgo, count],
  );
}

async function remaining(db: TestDatabase): Promise<Record<string, number>> {
  const rows = await db.query<{ kind: string; n: number }>(
    `SELECT split_part(order_id, '-', 1) AS kind, count(*)::int AS n FROM order_webhooks.outbox
      WHERE order_id ~ '^[a-z]+-[0-9]+$' GROUP BY 1 ORDER BY 1`,
  );
  return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
}

async function attemptRows(db: TestDatabase): Promise<number> {
  return (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM order_webhooks.outbox_attempt'))[0]!.n;
}

/** Every kind of event retention must tell apart. */
async function addEveryKind(db: TestDatabase): Promise<void> {
  await addEvents(db, 'expired', 2500, { status: 'delivered', createdAgo: '40 days', lastAttemptAgo: '31 days' });
  await addEvents(db, 'recent', 30, { status: 'delivered', createdAgo: '29 days', lastAttemptAgo: '29 days' });
  await addEvents(db, 'pending', 20, { status: 'pending', createdAgo: '60 days', lastAttemptAgo: '59 days' });
  await addEvents(db, 'oldfailed', 10, { status: 'failed', createdAgo: '60 days', lastAttemptAgo: '50 days' });
  // Created long ago, replayed and failed again yesterday: its age is its last attempt's.
  await addEvents(db, 'refailed', 5, { status: 'failed', createdAgo: '60 days', lastAttemptAgo: '1 day' });
}

describe('retention', () => {
  const stack = stacksClosedAfter();
  const log = createLogger('silent');

  it('deletes delivered events older than retention.delivered with their attempts, in batches, and nothing else; failed stay with null', async () => {
    const s = await stack('retention_delivered', { startNow: false });
    await addEveryKind(s.db);
    const pool = createPool(s.db.url, log, 2, 10_000);
    try {
      const retention = new Retention(pool, 'order_webhooks', log, { deliveredMs: 30 * DAY, failedMs: null, batchSize: 1000 });
      assert.deepEqual(await retention.runOnce(), { delivered: 2500, failed: 0 });
      assert.equal(retention.statements, 3, 'batches of at most 1,000 rows');
      assert.deepEqual(await remaining(s.db), { oldfailed: 10, pending: 20, recent: 30, refailed: 5 });
      assert.equal(await attemptRows(s.db), 2 * (10 + 20 + 30 + 5), 'the attempts of deleted events went with them');
      assert.deepEqual(await retention.runOnce(), { delivered: 0, failed: 0 }, 'nothing more');
      // Found by walking the partial indexes of migration 6 in order, on the service's connection settings.
      assert.match(await retention.explain('delivered'), /Index Scan using outbox_delivered_at/);
      assert.doesNotMatch(await retention.explain('delivered'), /Sort|Seq Scan/);
      assert.match(await retention.explain('failed'), /Index Scan using outbox_failed/);
    } finally {
      await pool.end();
    }
  });

  it('retention.failed deletes failed events whose last attempt is older; one instance at a time (advisory try-lock)', async () => {
    const s = await stack('retention_failed', { startNow: false });
    await addEveryKind(s.db);
    const pool = createPool(s.db.url, log, 2, 10_000);
    const other = new pg.Client({ connectionString: s.db.url });
    await other.connect();
    try {
      const retention = new Retention(pool, 'order_webhooks', log, { deliveredMs: null, failedMs: 7 * DAY });
      // Another instance is running retention: this one skips the round.
      await other.query('SELECT pg_advisory_lock($1)', [lockKey('order_webhooks', 'retention')]);
      assert.equal(await retention.runOnce(), null);
      assert.equal((await remaining(s.db)).oldfailed, 10);
      await other.query('SELECT pg_advisory_unlock($1)', [lockKey('order_webhooks', 'retention')]);
      assert.deepEqual(await retention.runOnce(), { delivered: 0, failed: 10 });
      assert.deepEqual(await remaining(s.db), { expired: 2500, pending: 20, recent: 30, refailed: 5 });
    } finally {
      await other.end();
      await pool.end();
    }
  });

  it('the running service deletes expired events while it delivers, and counts them in /metrics', async () => {
    const s = await stack('retention_service', { startNow: false });
    await addEveryKind(s.db);
    const configPath = writeConfig({ ...s.config, http: { port: 0 }, retention: { delivered: 'P30D', failed: null } });
    s.service = await startService(configPath);
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await s.receiver.waitForCount(1);
    await waitFor(async () => (await remaining(s.db)).expired === undefined, { what: 'expired events deleted' });
    assert.deepEqual(await remaining(s.db), { oldfailed: 10, pending: 20, recent: 30, refailed: 5 });
    const delivered = await s.db.query("SELECT 1 FROM order_webhooks.outbox WHERE order_id !~ '^[a-z]+-[0-9]+$' AND status = 'delivered'");
    assert.equal(delivered.length, 1, 'the event just delivered stays');
    await s.service.waitForLog('"msg":"retention: expired events deleted"');
    const port = Number(/"port":(\d+),"msg":"http listening/.exec(s.service.output())![1]);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.match(metrics, /^order_webhooks_retention_deleted_total\{status="delivered"\} 2500$/m);
    assert.match(metrics, /^order_webhooks_retention_deleted_total\{status="failed"\} 0$/m);
  });
});
