// Claiming changes from the journal, against the real server: per-order order when two instances
// claim at once, and which changes go out at once and which wait in the outbox.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import pg from 'pg';
import { Journal } from '../src/outbox/journal.ts';
import { claimPlanned } from './helpers/claim.ts';
import { run, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase, insertOrder, type TestDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';

describe('journal claims', () => {
  let db: TestDatabase;
  let journal: Journal;
  let installation: string;
  /** The journal's claim, mapped as the event store maps it. */
  const claim = (limit: number, leaseMs: number) => claimPlanned(journal, installation, limit, leaseMs);
  let claimPool: pg.Pool;
  const changes = () =>
    db.query<{ id: string; order_id: string; attempts: number; claimed: boolean }>(
      'SELECT id::text, order_id, attempts, claimed_until IS NOT NULL AS claimed FROM order_webhooks.change ORDER BY id',
    );

  before(async () => {
    db = await createTestDatabase('journal');
    await createOrdersTable(db);
    const config = writeConfig({ database: { url: db.url }, orders: { dueDateColumn: 'due_date' } });
    const migrated = await run(['migrate', '--config', config]);
    assert.equal(migrated.code, 0, migrated.stderr);
    claimPool = new pg.Pool({ connectionString: db.url, max: 2 });
    journal = new Journal(claimPool, 'order_webhooks');
    installation = await Journal.installationId(claimPool, 'order_webhooks');
  });
  after(async () => {
    await claimPool.end();
    await db.drop();
  });
  beforeEach(() => db.query('TRUNCATE order_webhooks.change, order_webhooks.outbox, order_webhooks.outbox_attempt'));

  it('an order’s changes are sent at once, one after another; an order with an event pending is moved whole', async () => {
    const alone = await insertOrder(db);
    const twice = await insertOrder(db);
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [twice]);
    const waiting = await insertOrder(db);
    await db.query(
      "INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body) VALUES (gen_random_uuid(), 0, $1, 'OrderCreated', '{}')",
      [waiting],
    );
    const claimed = await claim(10, 60_000);
    assert.equal(claimed.changes, 4);
    // An order's later change follows its first, each sent once the one before is delivered.
    assert.deepEqual(
      claimed.send.map((e) => [e.orderId, e.eventType, e.attempt, (e.followers ?? []).map((f) => [f.orderId, f.eventType, f.attempt])]),
      [
        [alone, 'OrderCreated', 1, []],
        [twice, 'OrderCreated', 1, [[twice, 'OrderAccepted', 1]]],
      ],
    );
    assert.deepEqual(
      claimed.move.map((m) => [m.events[0]!.orderId, m.events[0]!.eventType, m.attemptsMade]),
      [[waiting, 'OrderCreated', 0]],
    );
    // Claimed: nothing more to claim until the leases end.
    assert.equal((await claim(10, 60_000)).changes, 0);
    assert.deepEqual(
      (await changes()).map((c) => [c.attempts, c.claimed]),
      [
        [1, true],
        [1, true],
        [1, true],
        [1, true],
      ],
    );
    // Moved, pending behind the order's event; the sent ones stay in the journal until their results.
    assert.deepEqual(await journal.move(claimed.move), { changes: 1, events: 1 });
    const outbox = await db.query<{ order_id: string; event_type: string; status: string; due: boolean }>(
      'SELECT order_id, event_type, status, next_attempt_at IS NOT NULL AS due FROM order_webhooks.outbox WHERE change_id <> 0 ORDER BY id',
    );
    assert.deepEqual(
      outbox.map((r) => [r.order_id, r.event_type, r.status, r.due]),
      [[waiting, 'OrderCreated', 'pending', false]],
    );
    assert.deepEqual(
      (await changes()).map((c) => c.order_id),
      [alone, twice, twice],
    );
  });

  it('an order with a change claimed elsewhere is left alone, even by a claim that saw it unclaimed', async () => {
    const order = await insertOrder(db);
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [order]);
    const [first, second] = await changes();
    // Another instance claims the order's first change and has not committed yet: our claim, which
    // sees both changes unclaimed, waits for that row and then finds it claimed.
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      await other.query('BEGIN');
      await other.query(
        "UPDATE order_webhooks.change SET attempts = attempts + 1, claimed_until = now() + interval '1 min' WHERE id = $1",
        [first!.id],
      );
      const ours = claim(10, 60_000);
      await waitFor(
        async () =>
          (await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).length > 0,
        { what: 'our claim waiting for the row lock' },
      );
      await other.query('COMMIT');
      const claimed = await ours;
      // Taking the second change now would put it ahead of the first: it was given back.
      assert.equal(claimed.changes, 0);
      assert.deepEqual(claimed.send, []);
      assert.deepEqual(claimed.move, []);
    } finally {
      await other.end();
    }
    assert.deepEqual(
      (await changes()).map((c) => [c.id, c.attempts, c.claimed]),
      [
        [first!.id, 1, true],
        [second!.id, 0, false],
      ],
    );
    // And while that claim runs, a new claim leaves the order alone too.
    assert.equal((await claim(10, 60_000)).changes, 0);
  });

  it('a claim whose lease ran out is claimed again, with the next attempt number', async () => {
    await insertOrder(db);
    const first = await claim(10, 1);
    assert.equal(first.send[0]!.attempt, 1);
    await db.query("UPDATE order_webhooks.change SET claimed_until = now() - interval '1 s'");
    const again = await claim(10, 60_000);
    assert.equal(again.send[0]!.attempt, 2);
    assert.equal(again.send[0]!.eventId, first.send[0]!.eventId, 'the same event id');
    // The first claim's result no longer counts; the second's does.
    const result = {
      startedAt: new Date(),
      durationMs: 1,
      httpStatus: 200,
      error: null,
      errorKind: null,
      status: 'delivered' as const,
      nextAttemptAt: null,
    };
    assert.deepEqual(await journal.record([{ ...result, event: first.send[0]! }]), { recorded: 0 });
    assert.deepEqual(await journal.record([{ ...result, event: again.send[0]! }]), { recorded: 1 });
    const [row] = await db.query<{ status: string; attempts: number }>('SELECT status, attempts FROM order_webhooks.outbox');
    assert.deepEqual(row, { status: 'delivered', attempts: 2 });
    assert.deepEqual(await changes(), []);
  });
});
