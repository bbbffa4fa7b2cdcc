// Bulk statements of the order app (issue 24): one UPDATE or INSERT … SELECT of thousands of orders
// is recorded row by row, each change once, on a plain and on a partitioned table; and the trigger,
// which has no search_path of its own, cannot be redirected by the order app's session.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { run, writeConfig } from './helpers/cli.ts';
import { createTestDatabase, serverUrl, type TestDatabase } from './helpers/db.ts';

interface JournalRow {
  order_id: string;
  op: string;
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
}

const COUNT = 10_000;

async function migrateFor(db: TestDatabase, schema: string, orders: object): Promise<void> {
  const result = await run(['migrate', '--config', writeConfig({ database: { url: db.url, schema }, orders })]);
  assert.equal(result.code, 0, result.stderr);
}

/** The journal by order: each order's changes in the order they were recorded. */
async function journalByOrder(db: TestDatabase, schema: string): Promise<Map<string, JournalRow[]>> {
  const rows = await db.query<JournalRow>(
    `SELECT order_id, op, old_state, new_state, old_due_date, new_due_date FROM ${pg.escapeIdentifier(schema)}.change ORDER BY id`,
  );
  const byOrder = new Map<string, JournalRow[]>();
  for (const row of rows) byOrder.set(row.order_id, [...(byOrder.get(row.order_id) ?? []), row]);
  return byOrder;
}

const row = (op: string, id: number, from: string | null, to: string, oldDue: string | null, newDue: string | null): JournalRow => ({
  order_id: String(id),
  op,
  old_state: from,
  new_state: to,
  old_due_date: oldDue,
  new_due_date: newDue,
});

/** The due date every order starts with, and the one the bulk UPDATE gives every third order. */
const dueOf = (id: number) => `2027-01-${String(1 + (id % 28)).padStart(2, '0')}`;
const MOVED_DUE = '2027-03-01';

/**
 * One INSERT … SELECT of COUNT orders, then, in one transaction, one UPDATE of all of them: even
 * orders change state, every third order changes its due date, the others only their note.
 * Checks that each order has its INSERT and exactly the UPDATE it should have.
 */
async function bulkRound(db: TestDatabase, table: string, schema: string, openState: string): Promise<void> {
  await db.query(
    `INSERT INTO ${table} (id, state, due_date, note)
       SELECT i, '${openState}', date '2027-01-01' + (i % 28), 'bulk' FROM generate_series(1, ${COUNT}) i`,
  );
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(
      `UPDATE ${table}
          SET state = CASE WHEN id % 2 = 0 THEN 'expired' ELSE state END,
              due_date = CASE WHEN id % 3 = 0 THEN date '${MOVED_DUE}' ELSE due_date END,
              note = 'touched'`,
    );
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  const byOrder = await journalByOrder(db, schema);
  assert.equal(byOrder.size, COUNT);
  for (let id = 1; id <= COUNT; id++) {
    const expected = [row('INSERT', id, null, openState, null, dueOf(id))];
    const newState = id % 2 === 0 ? 'expired' : openState;
    const newDue = id % 3 === 0 ? MOVED_DUE : dueOf(id);
    if (newState !== openState || newDue !== dueOf(id)) expected.push(row('UPDATE', id, openState, newState, dueOf(id), newDue));
    assert.deepEqual(byOrder.get(String(id)), expected, `order ${id}`);
  }
}

describe('bulk statements', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('bulk');
  });
  after(() => db.drop());

  it(`a plain table: one INSERT … SELECT and one UPDATE of ${COUNT.toLocaleString('en-US')} orders, each change recorded once`, async () => {
    await db.query('CREATE TABLE plain_orders (id integer PRIMARY KEY, state text NOT NULL, due_date date, note text)');
    await migrateFor(db, 'b_plain', { table: 'plain_orders', dueDateColumn: 'due_date' });
    await bulkRound(db, 'plain_orders', 'b_plain', 'created');
  });

  it('a partitioned table: rows moving between partitions within the bulk UPDATE are each one UPDATE with the right transition', async () => {
    // By state (expired orders move to the archive) and, inside the open orders, by due date (the
    // new due date moves every third order to the March sub-partition): a row can move for either.
    await db.query(
      'CREATE TABLE part_orders (id integer, state text NOT NULL, due_date date NOT NULL, note text, PRIMARY KEY (id, state, due_date)) PARTITION BY LIST (state)',
    );
    await db.query("CREATE TABLE part_open PARTITION OF part_orders FOR VALUES IN ('accepted') PARTITION BY RANGE (due_date)");
    await db.query("CREATE TABLE part_open_jan PARTITION OF part_open FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')");
    await db.query("CREATE TABLE part_open_mar PARTITION OF part_open FOR VALUES FROM ('2027-03-01') TO ('2027-04-01')");
    await db.query('CREATE TABLE part_archive PARTITION OF part_orders DEFAULT');
    await migrateFor(db, 'b_part', { table: 'part_orders', dueDateColumn: 'due_date' });
    await bulkRound(db, 'part_orders', 'b_part', 'accepted');
    const where = await db.query<{ partition: string; n: string }>(
      'SELECT tableoid::regclass::text AS partition, count(*) AS n FROM part_orders GROUP BY 1 ORDER BY 1',
    );
    // Odd orders kept their state (open), every third of them moved to March: the rows did move.
    const odd = COUNT / 2;
    const oddMoved = Math.floor((COUNT / 3 + 1) / 2);
    assert.deepEqual(where, [
      { partition: 'part_archive', n: String(COUNT / 2) },
      { partition: 'part_open_jan', n: String(odd - oddMoved) },
      { partition: 'part_open_mar', n: String(oddMoved) },
    ]);
  });
});

describe("the trigger ignores the order app's search_path", () => {
  let db: TestDatabase;
  const role = `ow_bulk_app_${randomBytes(4).toString('hex')}`;
  let app: pg.Client;
  before(async () => {
    db = await createTestDatabase('bulk_search_path');
    await db.query(`CREATE ROLE ${role} LOGIN`);
    await db.query(`CREATE SCHEMA shop AUTHORIZATION ${role}`);
    await db.query(
      'CREATE TABLE shop.orders (id integer, state text NOT NULL, due_date date NOT NULL, PRIMARY KEY (id, state)) PARTITION BY LIST (state)',
    );
    await db.query("CREATE TABLE shop.orders_open PARTITION OF shop.orders FOR VALUES IN ('created', 'accepted')");
    await db.query('CREATE TABLE shop.orders_done PARTITION OF shop.orders DEFAULT');
    await db.query(`ALTER TABLE shop.orders OWNER TO ${role}`);
    await migrateFor(db, 'b_safe', { schema: 'shop', table: 'orders', dueDateColumn: 'due_date' });
    const url = new URL(serverUrl(db.name));
    url.username = role;
    app = new pg.Client({ connectionString: url.toString() });
    await app.connect();
    // The order app's role shadows, in its own schema first on its path, every name the trigger
    // uses: each stand-in records that it ran (with our owner's rights, had it been called).
    await app.query(`SET search_path = shop, pg_catalog`);
    await app.query(`CREATE TABLE shop.calls (who text, what text)`);
    await app.query(`GRANT INSERT ON shop.calls TO PUBLIC`);
    const spy = (what: string) => `INSERT INTO shop.calls VALUES (current_user, '${what}')`;
    await app.query(`
      CREATE FUNCTION shop.eq(a text, b text) RETURNS boolean LANGUAGE sql AS $$ ${spy('=')}; SELECT true $$;
      CREATE OPERATOR shop.= (LEFTARG = text, RIGHTARG = text, FUNCTION = shop.eq);
      CREATE FUNCTION shop.ne(a oid, b oid) RETURNS boolean LANGUAGE sql AS $$ ${spy('<>')}; SELECT true $$;
      CREATE OPERATOR shop.<> (LEFTARG = oid, RIGHTARG = oid, FUNCTION = shop.ne);
      CREATE FUNCTION shop.get(a jsonb, b integer) RETURNS text LANGUAGE sql AS $$ ${spy('->>')}; SELECT 'x' $$;
      CREATE OPERATOR shop.->> (LEFTARG = jsonb, RIGHTARG = integer, FUNCTION = shop.get);
      CREATE FUNCTION shop.path(a jsonb, b text[]) RETURNS text LANGUAGE sql AS $$ ${spy('#>>')}; SELECT 'x' $$;
      CREATE OPERATOR shop.#>> (LEFTARG = jsonb, RIGHTARG = text[], FUNCTION = shop.path);
      CREATE FUNCTION shop.to_jsonb(d date) RETURNS jsonb LANGUAGE sql AS $$ ${spy('to_jsonb')}; SELECT '"x"'::jsonb $$;
      CREATE FUNCTION shop.set_config(a text, b text, c boolean) RETURNS text LANGUAGE sql AS $$ ${spy('set_config')}; SELECT 'x' $$;
      CREATE FUNCTION shop.current_setting(a text, b boolean) RETURNS text LANGUAGE sql AS $$ ${spy('current_setting')}; SELECT 'x' $$;
      CREATE FUNCTION shop.current_setting(a text) RETURNS text LANGUAGE sql AS $$ ${spy('current_setting')}; SELECT '0' $$;
      CREATE FUNCTION shop.jsonb_build_array(VARIADIC a text[]) RETURNS jsonb LANGUAGE sql AS $$ ${spy('jsonb_build_array')}; SELECT '[]'::jsonb $$;
      CREATE FUNCTION shop.pg_try_advisory_xact_lock_shared(k bigint) RETURNS boolean LANGUAGE sql AS $$ ${spy('lock')}; SELECT true $$;
      CREATE FUNCTION shop.pg_notify(a text, b text) RETURNS void LANGUAGE sql AS $$ ${spy('pg_notify')} $$;
      CREATE TABLE shop.change (order_id text, op text, old_state text, new_state text, old_due_date text, new_due_date text);
      GRANT INSERT ON shop.change TO PUBLIC;
    `);
    // pg_temp comes first on every path for tables and types: a temporary "change" and "text" too.
    await app.query(
      'CREATE TEMP TABLE change (order_id text, op text, old_state text, new_state text, old_due_date text, new_due_date text)',
    );
    await app.query('CREATE TYPE pg_temp.text AS (x integer)');
  });
  after(async () => {
    await app?.end();
    await db.drop();
    const admin = new pg.Client({ connectionString: serverUrl() });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.end();
  });

  it('an INSERT … SELECT and a moving bulk UPDATE are recorded, and none of the stand-ins runs', async () => {
    await app.query(`INSERT INTO orders SELECT i, 'created', date '2027-01-01' + i FROM generate_series(1, 100) i`);
    await app.query(`UPDATE orders SET state = CASE WHEN id % 2 = 0 THEN 'signed' ELSE 'accepted' END, due_date = due_date + 1`);
    assert.deepEqual((await app.query('SELECT who, what FROM shop.calls')).rows, [], 'no stand-in ran');
    assert.equal((await db.query('SELECT * FROM shop.change')).length, 0);
    const byOrder = await journalByOrder(db, 'b_safe');
    assert.equal(byOrder.size, 100);
    const day = (n: number) => new Date(Date.UTC(2027, 0, 1 + n)).toISOString().slice(0, 10);
    for (let id = 1; id <= 100; id++) {
      assert.deepEqual(
        byOrder.get(String(id)),
        [
          row('INSERT', id, null, 'created', null, day(id)),
          row('UPDATE', id, 'created', id % 2 === 0 ? 'signed' : 'accepted', day(id), day(id + 1)),
        ],
        `order ${id}`,
      );
    }
  });
});
