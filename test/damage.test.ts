import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from './helpers/cli.ts';
import { insertOrder } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, type Stack, stacksClosedAfter } from './helpers/stack.ts';
import { inspectSchema } from '../src/schema/inspect.ts';

// The documented choice (docs/security.md, "If our schema is damaged"): when the journal cannot be
// written, the order app's write fails with our error and nothing of it is kept, so no change is
// ever lost unseen; start, migrate and inspectSchema name the damage in one line.
describe('damaged schema', () => {
  const stack = stacksClosedAfter();

  const orders = async (s: Stack) => (await s.db.query<{ n: number }>('SELECT count(*)::int AS n FROM orders'))[0]!.n;
  const startRefuses = async (s: Stack, problem: RegExp) => {
    const result = await run(['start', '--config', s.configPath]);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    assert.match(result.stderr, /^order-webhooks: start: schema "order_webhooks" is damaged: /);
    assert.match(result.stderr, problem);
  };

  it('a fresh schema has no problems, and the service delivers', async () => {
    const s = await stack('damage_none');
    assert.deepEqual(await inspectSchema(s.db.pool, 'order_webhooks'), []);
    await insertOrder(s.db);
    await s.receiver.waitForCount(1);
  });

  it('our journal table dropped: the order app’s write fails with our error and is not kept; start and migrate say so', async () => {
    const s = await stack('damage_dropped', { startNow: false });
    await s.db.query('DROP TABLE order_webhooks.change');
    await assert.rejects(insertOrder(s.db), (error: Error & { where?: string }) => {
      assert.match(error.message, /relation "order_webhooks\.change" does not exist/);
      assert.match(error.where ?? '', /order_webhooks\.capture_change\(\)/);
      return true;
    });
    assert.equal(await orders(s), 0);
    assert.deepEqual(await inspectSchema(s.db.pool, 'order_webhooks'), [
      'table "order_webhooks"."change" is missing: the capture trigger fails, and every order app write that it fires for is refused',
    ]);
    await startRefuses(s, /table "order_webhooks"\."change" is missing/);
    const migrated = await run(['migrate', '--config', s.configPath]);
    assert.equal(migrated.code, 2, migrated.stderr);
    assert.match(
      migrated.stderr,
      /^order-webhooks: migrate: schema "order_webhooks" is damaged and migrate cannot repair it: table .*change" is missing/,
    );
  });

  it('a journal column altered or added by hand: the write fails and is not kept; start names the column', async () => {
    const s = await stack('damage_altered', { startNow: false });
    await s.db.query('ALTER TABLE order_webhooks.change ALTER COLUMN new_state TYPE integer USING NULL');
    await assert.rejects(insertOrder(s.db), /column "new_state" is of type integer but expression is of type text/);
    await s.db.query('ALTER TABLE order_webhooks.change ALTER COLUMN new_state TYPE text');
    await s.db.query('ALTER TABLE order_webhooks.change ADD COLUMN audited_by text NOT NULL');
    await assert.rejects(insertOrder(s.db), /null value in column "audited_by"/);
    assert.equal(await orders(s), 0);
    await s.db.query('ALTER TABLE order_webhooks.change ALTER COLUMN old_state TYPE varchar(10)');
    assert.deepEqual(await inspectSchema(s.db.pool, 'order_webhooks'), [
      'column "old_state" of "order_webhooks"."change" is character varying(10), not text: the capture trigger fails, and order app writes are refused',
      'column "audited_by" of "order_webhooks"."change" is NOT NULL with no default: the capture trigger fails, and order app writes are refused',
    ]);
    await startRefuses(s, /column "old_state" .* not text.*; column "audited_by" .* NOT NULL with no default/);
  });

  it('the trigger disabled or dropped: writes go on uncaptured; start refuses; migrate re-installs a dropped one', async () => {
    const s = await stack('damage_trigger', { startNow: false });
    await s.db.query('ALTER TABLE orders DISABLE TRIGGER order_webhooks_capture_insert');
    await insertOrder(s.db);
    assert.deepEqual(await s.db.query('SELECT id FROM order_webhooks.change'), []);
    await startRefuses(s, /trigger "order_webhooks_capture_insert" on orders is disabled: order inserts are not captured/);
    await s.db.query('ALTER TABLE orders ENABLE TRIGGER order_webhooks_capture_insert');

    await s.db.query('DROP FUNCTION order_webhooks.capture_change() CASCADE');
    assert.deepEqual(await inspectSchema(s.db.pool, 'order_webhooks'), [
      'function "order_webhooks"."capture_change" is missing: order changes are not captured; run `order-webhooks migrate`',
    ]);
    await startRefuses(s, /function "order_webhooks"\."capture_change" is missing/);
    const migrated = await run(['migrate', '--config', s.configPath]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /schema up to date; capture trigger installed/);
    assert.deepEqual(await inspectSchema(s.db.pool, 'order_webhooks'), []);
    await s.start();
    await insertOrder(s.db);
    await waitFor(async () => (await outbox(s.db)).some((row) => row.status === 'delivered'), { what: 'the event delivered' });
    assert.equal((await outbox(s.db)).length, 1, 'only the order written after the repair was captured');
    assert.equal(s.receiver.requests.length, 1);
  });
});
