import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { run, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { listMigrations } from '../src/schema/migrate.ts';
import { lockKey } from '../src/db.ts';

interface JournalRow {
  order_id: string;
  op: string;
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
}

const WAKE_LOCK = lockKey('order_webhooks', 'wake');

describe('capture', () => {
  let db: TestDatabase;
  let config: string;
  /** Runs `action` while a session holds the wake lock exclusively, as an idle service does. */
  const listening = async (action: () => Promise<void>) => {
    const idle = new pg.Client({ connectionString: db.url });
    await idle.connect();
    try {
      assert.deepEqual((await idle.query('SELECT pg_try_advisory_lock($1) AS ok', [WAKE_LOCK])).rows, [{ ok: true }]);
      await action();
    } finally {
      await idle.end();
    }
  };
  const journal = () =>
    db.query<JournalRow>('SELECT order_id, op, old_state, new_state, old_due_date, new_due_date FROM order_webhooks.change ORDER BY id');

  before(async () => {
    db = await createTestDatabase('capture');
    await createOrdersTable(db);
    config = writeConfig({ database: { url: db.url }, orders: { dueDateColumn: 'due_date' } });
    const result = await run(['migrate', '--config', config]);
    assert.equal(result.code, 0, result.stderr);
    const all = listMigrations('x').map((m) => `${m.version}_${m.name}`);
    assert.ok(all.length >= 4);
    assert.match(result.stdout, new RegExp(`applied ${all.join(', ')}; capture trigger installed`));
  });
  after(() => db.drop());

  it('migrate is recorded and idempotent', async () => {
    const again = await run(['migrate', '--config', config]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /schema up to date; capture trigger up to date/);
    assert.deepEqual(
      await db.query('SELECT version, name FROM order_webhooks.migration ORDER BY version'),
      listMigrations('x').map(({ version, name }) => ({ version, name })),
    );
  });

  it('records INSERTs and state or due-date UPDATEs, nothing else', async () => {
    await db.query('TRUNCATE order_webhooks.change');
    const id = (await db.query<{ id: string }>("INSERT INTO orders (state, due_date) VALUES ('created', '2027-01-31') RETURNING id"))[0]!
      .id;
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [id]);
    await db.query("UPDATE orders SET due_date = '2027-02-28' WHERE id = $1", [id]);
    await db.query("UPDATE orders SET note = 'only a note' WHERE id = $1", [id]);
    await db.query("UPDATE orders SET state = 'accepted' WHERE id = $1", [id]); // same value: no change
    // A rolled-back change leaves no journal row: the trigger writes in the order app's transaction.
    const app = await db.pool.connect();
    try {
      await app.query('BEGIN');
      await app.query("UPDATE orders SET state = 'rejected' WHERE id = $1", [id]);
      const inside = await app.query('SELECT new_state FROM order_webhooks.change ORDER BY id DESC LIMIT 1');
      assert.deepEqual(inside.rows, [{ new_state: 'rejected' }], 'recorded inside the transaction');
    } finally {
      await app.query('ROLLBACK');
      app.release();
    }
    assert.deepEqual(await journal(), [
      { order_id: id, op: 'INSERT', old_state: null, new_state: 'created', old_due_date: null, new_due_date: '2027-01-31' },
      { order_id: id, op: 'UPDATE', old_state: 'created', new_state: 'accepted', old_due_date: '2027-01-31', new_due_date: '2027-01-31' },
      { order_id: id, op: 'UPDATE', old_state: 'accepted', new_state: 'accepted', old_due_date: '2027-01-31', new_due_date: '2027-02-28' },
    ]);
  });

  it('records dates in ISO 8601 whatever the order app’s DateStyle', async () => {
    await db.query('TRUNCATE order_webhooks.change');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query("SET DateStyle = 'SQL, DMY'");
      await client.query("INSERT INTO orders (state, due_date) VALUES ('created', '2027-03-04')");
    } finally {
      await client.end();
    }
    assert.equal((await journal())[0]!.new_due_date, '2027-03-04');
  });

  it('one UPDATE of 1,000 orders: 1,000 journal rows and one NOTIFY', async () => {
    await db.query('TRUNCATE order_webhooks.change');
    await db.query("INSERT INTO orders (state, note) SELECT 'created', 'bulk' FROM generate_series(1, 1000)");
    await db.query('TRUNCATE order_webhooks.change');
    await listening(async () => {
      const notifications = await countNotifications(db, 'order_webhooks_wake', () =>
        db.query("UPDATE orders SET state = 'signed' WHERE note = 'bulk'"),
      );
      assert.equal(notifications, 1);
    });
    const rows = await journal();
    assert.equal(rows.length, 1000);
    assert.ok(rows.every((row) => row.op === 'UPDATE' && row.new_state === 'signed'));
  });

  it('sends no NOTIFY while no listener is idle (draining, or no service running)', async () => {
    const notifications = await countNotifications(db, 'order_webhooks_wake', () =>
      db.query("INSERT INTO orders (state) VALUES ('created')"),
    );
    assert.equal(notifications, 0);
    assert.equal((await journal()).at(-1)!.op, 'INSERT', 'the change is recorded all the same');
  });

  it('a listener cannot go idle while an order transaction that sent no NOTIFY is open', async () => {
    const app = await db.pool.connect();
    const listener = new pg.Client({ connectionString: db.url });
    await listener.connect();
    try {
      await app.query('BEGIN');
      await app.query("INSERT INTO orders (state) VALUES ('created')");
      const tryIdle = async () => (await listener.query('SELECT pg_try_advisory_lock($1) AS ok', [WAKE_LOCK])).rows[0].ok;
      assert.equal(await tryIdle(), false, 'the open transaction holds the wake lock shared');
      await app.query('COMMIT');
      assert.equal(await tryIdle(), true, 'granted once it committed: the next look sees its change');
      // Idle now: the next order transaction wakes it.
      const notifications = await countNotifications(db, 'order_webhooks_wake', () =>
        db.query("INSERT INTO orders (state) VALUES ('created')"),
      );
      assert.equal(notifications, 1);
    } finally {
      app.release();
      await listener.end();
    }
  });

  it('the order app’s role needs no privilege on our schema', async () => {
    const role = `${db.name}_app`;
    await db.query(`CREATE ROLE ${pg.escapeIdentifier(role)} LOGIN`);
    try {
      await db.query(`GRANT SELECT, INSERT, UPDATE ON orders TO ${pg.escapeIdentifier(role)}`);
      const url = new URL(db.url);
      url.username = role;
      const app = new pg.Client({ connectionString: url.toString() });
      await app.connect();
      try {
        await assert.rejects(app.query('SELECT 1 FROM order_webhooks.change'), /permission denied/);
        const { rows } = await app.query("INSERT INTO orders (state) VALUES ('created') RETURNING id");
        await app.query("UPDATE orders SET state = 'expired' WHERE id = $1", [rows[0]!.id]);
        const recorded = await db.query('SELECT op, new_state FROM order_webhooks.change WHERE order_id = $1 ORDER BY id', [rows[0]!.id]);
        assert.deepEqual(recorded, [
          { op: 'INSERT', new_state: 'created' },
          { op: 'UPDATE', new_state: 'expired' },
        ]);
      } finally {
        await app.end();
      }
    } finally {
      await db.query(`DROP OWNED BY ${pg.escapeIdentifier(role)}`);
      await db.query(`DROP ROLE ${pg.escapeIdentifier(role)}`);
    }
  });

  it('waits for a busy orders table with a short lock_timeout, then installs', async () => {
    const blocker = new pg.Client({ connectionString: db.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query("UPDATE orders SET note = 'holding a row lock' WHERE id = (SELECT id FROM orders LIMIT 1)");
      // A changed config means the trigger must be re-installed, which needs a lock the open transaction blocks.
      const changed = writeConfig({ database: { url: db.url }, orders: {} });
      const migrating = run(['migrate', '--config', changed]);
      await waitFor(
        async () =>
          (await db.query("SELECT 1 FROM pg_stat_activity WHERE application_name = 'order-webhooks migrate' AND wait_event_type = 'Lock'"))
            .length > 0,
        { what: 'migrate waiting for the lock' },
      );
      await blocker.query('COMMIT');
      const result = await migrating;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /capture trigger installed/);
    } finally {
      await blocker.end();
    }
    const restored = await run(['migrate', '--config', config]);
    assert.equal(restored.code, 0, restored.stderr);
  });

  it('refuses to start before migrate, naming the command to run', async () => {
    const fresh = await createTestDatabase('capture_fresh');
    try {
      await createOrdersTable(fresh);
      const result = await run([
        'start',
        '--config',
        writeConfig({ database: { url: fresh.url }, webHook: { enabled: true, endpoint: 'http://127.0.0.1:1/x' } }),
      ]);
      assert.equal(result.code, 2);
      assert.match(result.stderr, /schema "order_webhooks" is not installed: run `order-webhooks migrate` first/);
    } finally {
      await fresh.drop();
    }
  });
});

describe('capture on an unusual orders table', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('capture_custom');
    await db.query(`CREATE SCHEMA "Sales"`);
    await db.query(`CREATE TYPE "Sales"."Order State" AS ENUM ('new', 'ok', 'gone')`);
    await db.query(`CREATE TABLE "Sales"."Order Book" (
      "OrderNo" bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      "Status" "Sales"."Order State" NOT NULL,
      "Due At" timestamp)`);
  });
  after(() => db.drop());

  it('works with any schema, table and column names, a bigint id, an enum state and a timestamp due date', async () => {
    const config = writeConfig({
      database: { url: db.url, schema: 'hooks "x"' },
      orders: { schema: 'Sales', table: 'Order Book', idColumn: 'OrderNo', stateColumn: 'Status', dueDateColumn: 'Due At' },
    });
    const result = await run(['migrate', '--config', config]);
    assert.equal(result.code, 0, result.stderr);
    await db.query(`INSERT INTO "Sales"."Order Book" ("Status", "Due At") VALUES ('new', '2027-01-01 12:30')`);
    await db.query(`UPDATE "Sales"."Order Book" SET "Status" = 'ok', "Due At" = '2027-01-02 08:00'`);
    assert.deepEqual(await db.query(`SELECT order_id, op, old_state, new_state, new_due_date FROM "hooks ""x""".change ORDER BY id`), [
      { order_id: '1', op: 'INSERT', old_state: null, new_state: 'new', new_due_date: '2027-01-01T12:30:00' },
      { order_id: '1', op: 'UPDATE', old_state: 'new', new_state: 'ok', new_due_date: '2027-01-02T08:00:00' },
    ]);
  });

  it('names the config key when the table or a column is wrong', async () => {
    const cases: [object, RegExp][] = [
      [{ schema: 'Sales', table: 'nope' }, /orders\.table: table "Sales"\."nope" does not exist/],
      [{ schema: 'Sales', table: 'Order Book', idColumn: 'id' }, /orders\.idColumn: column "id" not found in "Sales"\."Order Book"/],
      [
        { schema: 'Sales', table: 'Order Book', idColumn: 'OrderNo', stateColumn: 'Due At' },
        /orders\.stateColumn: column "Due At" is timestamp without time zone; expected text, varchar, an enum type or an integer code/,
      ],
      [
        { schema: 'Sales', table: 'Order Book', idColumn: 'OrderNo', stateColumn: 'Status', dueDateColumn: 'OrderNo' },
        /orders\.dueDateColumn: column "OrderNo" is bigint; expected date or timestamp/,
      ],
    ];
    for (const [orders, message] of cases) {
      const result = await run(['migrate', '--config', writeConfig({ database: { url: db.url, schema: 'hooks_bad' }, orders })]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
    }
  });

  it('two migrate processes at once both succeed and install once', async () => {
    const config = writeConfig({
      database: { url: db.url, schema: 'hooks_twice' },
      orders: { schema: 'Sales', table: 'Order Book', idColumn: 'OrderNo', stateColumn: 'Status' },
    });
    const [a, b] = await Promise.all([run(['migrate', '--config', config]), run(['migrate', '--config', config])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal([a.stdout, b.stdout].filter((out) => out.includes('applied 1_journal_outbox')).length, 1);
    assert.equal((await db.query('SELECT * FROM hooks_twice.migration')).length, listMigrations('x').length);
  });
});

/** Counts NOTIFYs on `channel` caused by `action`, using a marker notification as the end. */
async function countNotifications(db: TestDatabase, channel: string, action: () => Promise<unknown>): Promise<number> {
  const listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  try {
    const seen: string[] = [];
    listener.on('notification', (n) => seen.push(n.payload ?? ''));
    await listener.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    await action();
    await db.query('SELECT pg_notify($1, $2)', [channel, 'end-marker']);
    await waitFor(() => seen.includes('end-marker'), { what: 'the end marker notification' });
    return seen.indexOf('end-marker');
  } finally {
    await listener.end();
  }
}
