// A receiver outage: only each order's head is due (what a claim walks stays one row per order),
// the events behind it wait with no time and become due in turn, also when a move of new events and
// a result for the head run at the same moment; migration 7 gives existing rows that shape.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { listMigrations } from '../src/schema/migrate.ts';
import { Journal } from '../src/outbox/journal.ts';
import { claimPlanned } from './helpers/claim.ts';
import { Outbox } from '../src/outbox/outbox.ts';
import { run, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase, insertOrder, type TestDatabase } from './helpers/db.ts';
import { checkDeliveries, ORDER_LIFE, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, stacksClosedAfter } from './helpers/stack.ts';

/** Per order, whether each pending event (in outbox order) has a time: only the first may. */
async function pendingShape(db: TestDatabase): Promise<Map<string, boolean[]>> {
  const rows = await db.query<{ order_id: string; timed: boolean }>(
    "SELECT order_id, next_attempt_at IS NOT NULL AS timed FROM order_webhooks.outbox WHERE status = 'pending' ORDER BY id",
  );
  const shape = new Map<string, boolean[]>();
  for (const r of rows) shape.set(r.order_id, [...(shape.get(r.order_id) ?? []), r.timed]);
  return shape;
}

describe('outage', () => {
  const stack = stacksClosedAfter();

  it('receiver down: only each order’s earliest pending event has a time; back up: all delivered, in order', async () => {
    // The breaker off: this is about every event retrying against a dead receiver (test/endpointDown.test.ts has the breaker).
    const s = await stack('outage_down', {
      webHook: { retry: { delays: Array.from({ length: 40 }, () => 'PT0.2S') }, circuitBreaker: false },
    });
    s.receiver.respond = (_req, res) => {
      res.statusCode = 503;
      res.end();
    };
    const ids = await playOrders(s.db, 6);
    await waitFor(
      async () =>
        (await s.db.query('SELECT 1 FROM order_webhooks.change')).length === 0 &&
        (await s.db.query("SELECT 1 FROM order_webhooks.outbox WHERE status = 'pending'")).length === 6 * ORDER_LIFE.length,
      { what: 'every event pending in the outbox' },
    );
    // Several retries of the heads later, the shape holds: one timed head, three waiting behind it.
    await waitFor(async () => (await s.db.query('SELECT 1 FROM order_webhooks.outbox_attempt')).length >= 30, { what: 'retries' });
    const shape = await pendingShape(s.db);
    assert.equal(shape.size, 6);
    for (const [order, timed] of shape) assert.deepEqual(timed, [true, false, false, false], `order ${order}`);
    s.receiver.respond = (_req, res) => res.end('ok');
    await waitFor(
      async () => {
        const rows = await outbox(s.db);
        return rows.length === 6 * ORDER_LIFE.length && rows.every((r) => r.status === 'delivered' && r.next_attempt_at === null);
      },
      { what: 'backlog delivered', timeoutMs: 30_000 },
    );
    const check = await checkDeliveries(s.db, s.receiver.requests, ids);
    assert.equal(check.events, 6 * ORDER_LIFE.length);
  });
});

describe('outage: a move and a result for the same order at once', () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let journal: Journal;
  let installation: string;
  /** The journal's claim, mapped as the event store maps it. */
  const claim = (limit: number, leaseMs: number) => claimPlanned(journal, installation, limit, leaseMs);
  let store: Outbox;
  let other: pg.Client;

  before(async () => {
    db = await createTestDatabase('outage_race');
    await createOrdersTable(db);
    const config = writeConfig({ database: { url: db.url }, orders: { dueDateColumn: 'due_date' } });
    const migrated = await run(['migrate', '--config', config]);
    assert.equal(migrated.code, 0, migrated.stderr);
    pool = new pg.Pool({ connectionString: db.url, max: 3, application_name: 'outage test service' });
    journal = new Journal(pool, 'order_webhooks');
    installation = await Journal.installationId(pool, 'order_webhooks');
    store = new Outbox(pool, 'order_webhooks');
    other = new pg.Client({ connectionString: db.url });
    await other.connect();
  });
  after(async () => {
    await other.end();
    await pool.end();
    await db.drop();
  });
  beforeEach(() => db.query('TRUNCATE order_webhooks.change, order_webhooks.outbox, order_webhooks.outbox_attempt'));

  /** An order with one event pending in the outbox (claimed, as if in flight) and a new change in the journal. */
  async function headAndChange() {
    const order = await insertOrder(db);
    await db.query('DELETE FROM order_webhooks.change');
    await db.query(
      `INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body, attempts, next_attempt_at)
       VALUES (gen_random_uuid(), 0, $1, 'OrderCreated', '{}', 1, now() + interval '1 minute')`,
      [order],
    );
    const [head] = await db.query<{ id: string; event_id: string }>('SELECT id::text, event_id::text FROM order_webhooks.outbox');
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [order]);
    const claimed = await claim(10, 60_000);
    assert.equal(claimed.move.length, 1, 'its order has an event pending: the change is moved');
    return { order, head: head!, move: claimed.move };
  }

  const blocked = (application: string) =>
    waitFor(
      async () =>
        (await db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", [application])).length >
        0,
      { what: `${application} waiting for a lock` },
    );

  const timeOf = async (eventType: string) =>
    (
      await db.query<{ next_attempt_at: Date | null }>('SELECT next_attempt_at FROM order_webhooks.outbox WHERE event_type = $1', [
        eventType,
      ])
    )[0]!.next_attempt_at;

  it('the head is delivered while the move decides: the moved event is due, not left waiting behind nothing', async () => {
    const { head, move } = await headAndChange();
    await other.query('BEGIN');
    await other.query("UPDATE order_webhooks.outbox SET status = 'delivered', next_attempt_at = NULL WHERE id = $1", [head.id]);
    const moving = journal.move(move);
    await blocked('outage test service');
    await other.query('COMMIT');
    assert.deepEqual(await moving, { changes: 1, events: 1 });
    assert.notEqual(await timeOf('OrderAccepted'), null);
  });

  it('the move commits while the head’s result waits for it: the result makes the moved event due', async () => {
    const { head } = await headAndChange();
    // A move holding the head (as the real one does while it decides) and inserting the waiting event.
    await other.query('BEGIN');
    await other.query('SELECT 1 FROM order_webhooks.outbox WHERE id = $1 FOR SHARE', [head.id]);
    await other.query(
      `INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body)
       SELECT gen_random_uuid(), 1, order_id, 'OrderAccepted', '{}' FROM order_webhooks.outbox WHERE id = $1`,
      [head.id],
    );
    const now = new Date();
    const recording = store.record([
      {
        event: {
          source: 'outbox',
          id: head.id,
          endpoint: 'default',
          eventId: head.event_id,
          orderId: '',
          eventType: 'OrderCreated',
          body: '{}',
          attempt: 1,
        },
        startedAt: now,
        durationMs: 1,
        httpStatus: 200,
        error: null,
        errorKind: null,
        status: 'delivered',
        nextAttemptAt: null,
      },
    ]);
    await blocked('outage test service');
    await other.query('COMMIT');
    assert.equal(await recording, 1);
    assert.notEqual(await timeOf('OrderAccepted'), null);
  });
});

describe('outage: migration 7 on existing rows', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('outage_migration');
  });
  after(() => db.drop());

  it('events behind an earlier pending event of their order lose their time; heads and finished events keep theirs', async () => {
    const migrations = listMigrations('order_webhooks');
    await db.query('CREATE SCHEMA order_webhooks');
    for (const m of migrations.filter((m) => m.version < 7)) await db.query(m.sql);
    const insert = (order: string, status: string) =>
      db.query(
        `INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body, status, next_attempt_at)
         VALUES (gen_random_uuid(), 0, $1, 'OrderCreated', '{}', $2, CASE WHEN $2 = 'pending' THEN now() END)`,
        [order, status],
      );
    for (const [order, status] of [
      ['a', 'delivered'],
      ['a', 'pending'],
      ['b', 'pending'],
      ['a', 'pending'],
      ['b', 'pending'],
      ['c', 'failed'],
      ['a', 'pending'],
    ] as const) {
      await insert(order, status);
    }
    for (const m of migrations.filter((m) => m.version >= 7)) await db.query(m.sql);
    const rows = await db.query<{ order_id: string; status: string; timed: boolean }>(
      'SELECT order_id, status, next_attempt_at IS NOT NULL AS timed FROM order_webhooks.outbox ORDER BY id',
    );
    assert.deepEqual(
      rows.map((r) => `${r.order_id} ${r.status} ${r.timed}`),
      ['a delivered false', 'a pending true', 'b pending true', 'a pending false', 'b pending false', 'c failed false', 'a pending false'],
    );
    // And the trigger: the head delivered, the next of its order is due.
    await db.query("UPDATE order_webhooks.outbox SET status = 'delivered', next_attempt_at = NULL WHERE id = 2");
    const a = await db.query<{ timed: boolean }>(
      "SELECT next_attempt_at IS NOT NULL AS timed FROM order_webhooks.outbox WHERE order_id = 'a' AND status = 'pending' ORDER BY id",
    );
    assert.deepEqual(
      a.map((r) => r.timed),
      [true, false],
    );
  });
});
