// Capture on the tables order apps have: partitioned tables (rows moving between partitions),
// column types, replica sessions, disabled triggers, and the tables `migrate` refuses.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { captureTriggerStatus } from '../src/capture/state.ts';
import { run, startService, writeConfig } from './helpers/cli.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { checkDeliveries, playOrders } from './helpers/orders.ts';
import { waitFor } from './helpers/poll.ts';
import { startReceiver } from './helpers/receiver.ts';

interface JournalRow {
  order_id: string;
  op: string;
  old_state: string | null;
  new_state: string | null;
  old_due_date: string | null;
  new_due_date: string | null;
}

/** Runs `migrate` for one orders table into our schema `schema`; fails the test unless it succeeds. */
async function migrateFor(db: TestDatabase, schema: string, orders: object): Promise<void> {
  const result = await run(['migrate', '--config', writeConfig({ database: { url: db.url, schema }, orders })]);
  assert.equal(result.code, 0, result.stderr);
}

function journal(db: TestDatabase, schema: string): Promise<JournalRow[]> {
  return db.query<JournalRow>(
    `SELECT order_id, op, old_state, new_state, old_due_date, new_due_date FROM ${pg.escapeIdentifier(schema)}.change ORDER BY id`,
  );
}

/** The partition that holds an order now: proves that an update moved it. */
async function partitionOf(db: TestDatabase, table: string, id: string | number): Promise<string> {
  const rows = await db.query<{ partition: string }>(`SELECT tableoid::regclass::text AS partition FROM ${table} WHERE id = $1`, [id]);
  assert.equal(rows.length, 1, `order ${id} in ${table}`);
  return rows[0]!.partition;
}

const insert = (id: string, state: string, due: string | null = null): JournalRow => ({
  order_id: id,
  op: 'INSERT',
  old_state: null,
  new_state: state,
  old_due_date: null,
  new_due_date: due,
});
const update = (id: string, from: string, to: string, oldDue: string | null = null, newDue: string | null = oldDue): JournalRow => ({
  order_id: id,
  op: 'UPDATE',
  old_state: from,
  new_state: to,
  old_due_date: oldDue,
  new_due_date: newDue,
});

describe('capture on partitioned orders tables', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('tables_partitioned');
    await db.query("CREATE TYPE order_state AS ENUM ('created', 'accepted', 'signed', 'rejected', 'expired', 'canceled')");
  });
  after(() => db.drop());

  it('list by an enum state: an order moving to the finished partition is one UPDATE, never a second INSERT', async () => {
    await db.query(`CREATE TABLE by_state (id bigint GENERATED ALWAYS AS IDENTITY, state order_state NOT NULL, due_date date,
      PRIMARY KEY (id, state)) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE by_state_open PARTITION OF by_state FOR VALUES IN ('created', 'accepted')");
    await db.query("CREATE TABLE by_state_done PARTITION OF by_state FOR VALUES IN ('signed', 'rejected')");
    await migrateFor(db, 'h_list', { table: 'by_state', dueDateColumn: 'due_date' });
    await db.query("INSERT INTO by_state (state, due_date) VALUES ('created', '2027-01-31')");
    await db.query("UPDATE by_state SET state = 'accepted' WHERE id = 1");
    assert.equal(await partitionOf(db, 'by_state', 1), 'by_state_open');
    await db.query("UPDATE by_state SET state = 'signed', due_date = '2027-02-28' WHERE id = 1");
    assert.equal(await partitionOf(db, 'by_state', 1), 'by_state_done', 'the update moved the row');
    await db.query("UPDATE by_state SET due_date = '2027-03-31' WHERE id = 1");
    assert.deepEqual(await journal(db, 'h_list'), [
      insert('1', 'created', '2027-01-31'),
      update('1', 'created', 'accepted', '2027-01-31'),
      update('1', 'accepted', 'signed', '2027-01-31', '2027-02-28'),
      update('1', 'signed', 'signed', '2027-02-28', '2027-03-31'),
    ]);
  });

  it('range by due date with a default partition: a due date moving partitions is one UPDATE of the due date', async () => {
    await db.query(`CREATE TABLE by_due (id uuid DEFAULT gen_random_uuid(), state text NOT NULL, due_date date,
      PRIMARY KEY (id, due_date)) PARTITION BY RANGE (due_date)`);
    await db.query("CREATE TABLE by_due_jan PARTITION OF by_due FOR VALUES FROM ('2027-01-01') TO ('2027-02-01')");
    await db.query("CREATE TABLE by_due_feb PARTITION OF by_due FOR VALUES FROM ('2027-02-01') TO ('2027-03-01')");
    await db.query('CREATE TABLE by_due_other PARTITION OF by_due DEFAULT');
    await migrateFor(db, 'h_range', { table: 'by_due', dueDateColumn: 'due_date' });
    const [{ id }] = (await db.query<{ id: string }>(
      "INSERT INTO by_due (state, due_date) VALUES ('created', '2027-01-15') RETURNING id",
    )) as [{ id: string }];
    await db.query("UPDATE by_due SET due_date = '2027-02-10' WHERE id = $1", [id]);
    assert.equal(await partitionOf(db, 'by_due', id), 'by_due_feb');
    await db.query("UPDATE by_due SET due_date = '2030-01-01', state = 'accepted' WHERE id = $1", [id]);
    assert.equal(await partitionOf(db, 'by_due', id), 'by_due_other', 'into the default partition');
    await db.query("UPDATE by_due SET due_date = '2027-01-20' WHERE id = $1", [id]);
    assert.equal(await partitionOf(db, 'by_due', id), 'by_due_jan', 'out of the default partition');
    assert.deepEqual(await journal(db, 'h_range'), [
      insert(id, 'created', '2027-01-15'),
      update(id, 'created', 'created', '2027-01-15', '2027-02-10'),
      update(id, 'created', 'accepted', '2027-02-10', '2030-01-01'),
      update(id, 'accepted', 'accepted', '2030-01-01', '2027-01-20'),
    ]);
  });

  it('hash by state: each move between hash partitions is one UPDATE', async () => {
    await db.query(`CREATE TABLE by_hash (id integer, state text NOT NULL, PRIMARY KEY (id, state)) PARTITION BY HASH (state)`);
    for (let r = 0; r < 4; r++)
      await db.query(`CREATE TABLE by_hash_${r} PARTITION OF by_hash FOR VALUES WITH (MODULUS 4, REMAINDER ${r})`);
    await migrateFor(db, 'h_hash', { table: 'by_hash' });
    const states = ['created', 'accepted', 'signed', 'canceled', 'expired', 'rejected'];
    await db.query("INSERT INTO by_hash VALUES (7, 'created')");
    let moves = 0;
    let where = await partitionOf(db, 'by_hash', 7);
    for (const [from, to] of states.slice(1).map((state, i) => [states[i]!, state])) {
      await db.query('UPDATE by_hash SET state = $1 WHERE id = 7', [to]);
      const now = await partitionOf(db, 'by_hash', 7);
      if (now !== where) moves++;
      where = now;
      assert.ok(from);
    }
    assert.ok(moves >= 2, `at least two of the updates moved the row (${moves})`);
    assert.deepEqual(await journal(db, 'h_hash'), [insert('7', 'created'), ...states.slice(1).map((to, i) => update('7', states[i]!, to))]);
  });

  it('sub-partitions, an UPDATE on an inner partition, and partitions added after migrate (the trigger is cloned onto them)', async () => {
    await db.query(`CREATE TABLE nested (id text, state text NOT NULL, due_date timestamptz, PRIMARY KEY (id, state, due_date))
      PARTITION BY LIST (state)`);
    await db.query(`CREATE TABLE nested_open PARTITION OF nested FOR VALUES IN ('created', 'accepted')`);
    await db.query(`CREATE TABLE nested_done PARTITION OF nested FOR VALUES IN ('signed') PARTITION BY RANGE (due_date)`);
    await db.query(`CREATE TABLE nested_done_2027 PARTITION OF nested_done FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')`);
    await db.query(`CREATE TABLE nested_done_later PARTITION OF nested_done DEFAULT`);
    await migrateFor(db, 'h_nested', { table: 'nested', dueDateColumn: 'due_date' });
    // After migrate: one partition attached, one created as a partition.
    await db.query(`CREATE TABLE nested_gone (LIKE nested)`);
    await db.query(`ALTER TABLE nested ATTACH PARTITION nested_gone FOR VALUES IN ('canceled')`);
    await db.query(`CREATE TABLE nested_expired PARTITION OF nested FOR VALUES IN ('expired')`);
    const status = await captureTriggerStatus(db.pool, {
      schema: 'h_nested',
      orders: { schema: 'public', table: 'nested', idColumn: 'id', stateColumn: 'state' },
    });
    assert.deepEqual(status.problems, []);
    assert.equal(status.mode, 'origin');
    for (const partition of ['nested_gone', 'nested_expired', 'nested_done_later']) {
      assert.deepEqual(
        status.triggers.filter((t) => t.table === `"public"."${partition}"`).map((t) => t.trigger),
        ['h_nested_capture_delete', 'h_nested_capture_insert', 'h_nested_capture_update'],
        `row triggers on ${partition}`,
      );
    }
    const due = (text: string) => db.query<{ v: string }>("SELECT to_jsonb($1::timestamptz) #>> '{}' AS v", [text]).then((r) => r[0]!.v);
    const [d1, d2, d3] = [await due('2027-05-01 10:00+00'), await due('2029-05-01 10:00+00'), await due('2027-07-01 10:00+00')];
    await db.query("INSERT INTO nested VALUES ('a-1', 'created', '2027-05-01 10:00+00'), ('a-2', 'created', '2027-05-01 10:00+00')");
    await db.query("UPDATE nested SET state = 'signed' WHERE id = 'a-1'");
    assert.equal(await partitionOf(db, 'nested', 'a-1'), 'nested_done_2027');
    await db.query("UPDATE nested SET due_date = '2029-05-01 10:00+00' WHERE id = 'a-1'");
    assert.equal(await partitionOf(db, 'nested', 'a-1'), 'nested_done_later', 'between sub-partitions');
    // An UPDATE naming the inner partitioned table moves rows between its own partitions.
    await db.query("UPDATE nested_done SET due_date = '2027-07-01 10:00+00' WHERE id = 'a-1'");
    assert.equal(await partitionOf(db, 'nested', 'a-1'), 'nested_done_2027');
    await db.query("UPDATE nested SET state = 'canceled' WHERE id = 'a-2'");
    assert.equal(await partitionOf(db, 'nested', 'a-2'), 'nested_gone', 'into the attached partition');
    await db.query("UPDATE nested SET state = 'expired' WHERE id = 'a-2'");
    assert.equal(await partitionOf(db, 'nested', 'a-2'), 'nested_expired', 'into the partition created after migrate');
    assert.deepEqual(await journal(db, 'h_nested'), [
      insert('a-1', 'created', d1),
      insert('a-2', 'created', d1),
      update('a-1', 'created', 'signed', d1),
      update('a-1', 'signed', 'signed', d1, d2),
      update('a-1', 'signed', 'signed', d2, d3),
      update('a-2', 'created', 'canceled', d1),
      update('a-2', 'canceled', 'expired', d1),
    ]);
  });

  it('one UPDATE moving 2,000 orders: 2,000 UPDATEs with their own transitions, in order with the orders’ other changes', async () => {
    await db.query(`CREATE TABLE bulk (id integer, state order_state NOT NULL, PRIMARY KEY (id, state)) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE bulk_open PARTITION OF bulk FOR VALUES IN ('created', 'accepted')");
    await db.query('CREATE TABLE bulk_done PARTITION OF bulk DEFAULT');
    await migrateFor(db, 'h_bulk', { table: 'bulk' });
    await db.query(
      "INSERT INTO bulk SELECT i, CASE WHEN i % 2 = 0 THEN 'created' ELSE 'accepted' END::order_state FROM generate_series(1, 2000) i",
    );
    await db.query(`TRUNCATE h_bulk.change`);
    // One transaction: the bulk move, then one order moved back and on again.
    await db.query(`BEGIN`);
    try {
      await db.query(`UPDATE bulk SET state = CASE WHEN id % 2 = 0 THEN 'rejected' ELSE 'signed' END::order_state`);
      await db.query(`UPDATE bulk SET state = 'accepted' WHERE id = 2`);
      await db.query(`UPDATE bulk SET state = 'canceled' WHERE id = 2`);
    } finally {
      await db.query('COMMIT');
    }
    const rows = await journal(db, 'h_bulk');
    assert.equal(rows.length, 2002);
    assert.equal(rows.filter((row) => row.op !== 'UPDATE').length, 0, 'no INSERT');
    const byOrder = new Map<string, JournalRow[]>();
    for (const row of rows) byOrder.set(row.order_id, [...(byOrder.get(row.order_id) ?? []), row]);
    for (let id = 1; id <= 2000; id++) {
      const expected =
        id === 2
          ? [update('2', 'created', 'rejected'), update('2', 'rejected', 'accepted'), update('2', 'accepted', 'canceled')]
          : [id % 2 === 0 ? update(String(id), 'created', 'rejected') : update(String(id), 'accepted', 'signed')];
      assert.deepEqual(byOrder.get(String(id)), expected, `order ${id}`);
    }
  });

  it('an order the app deletes and inserts again in one transaction is recorded as created, not as a move', async () => {
    await db.query(`CREATE TABLE again (id integer, state text NOT NULL, region text NOT NULL, PRIMARY KEY (id, region))
      PARTITION BY LIST (region)`);
    await db.query("CREATE TABLE again_eu PARTITION OF again FOR VALUES IN ('eu')");
    await db.query("CREATE TABLE again_us PARTITION OF again FOR VALUES IN ('us')");
    await migrateFor(db, 'h_again', { table: 'again' });
    await db.query("INSERT INTO again VALUES (1, 'signed', 'eu'), (2, 'signed', 'eu'), (3, 'signed', 'eu')");
    await db.query('TRUNCATE h_again.change');
    const app = await db.pool.connect();
    try {
      await app.query('BEGIN');
      // Through the partitioned table: the DELETE statement ends by forgetting the row.
      await app.query('DELETE FROM again WHERE id = 1');
      await app.query("INSERT INTO again_us VALUES (1, 'created', 'us')");
      // DELETE from a partition, INSERT through the partitioned table: the INSERT statement starts by forgetting it.
      await app.query('DELETE FROM again_eu WHERE id = 2');
      await app.query("INSERT INTO again VALUES (2, 'created', 'us')");
      // DELETE and INSERT in one statement's worth of triggers, into the same partition.
      await app.query(
        "WITH gone AS (DELETE FROM again_eu WHERE id = 3 RETURNING id) INSERT INTO again_eu SELECT id, 'created', 'eu' FROM gone",
      );
      await app.query('COMMIT');
      // A move that changes neither the state nor the due date records nothing, as an UPDATE would.
      await app.query("UPDATE again SET region = 'eu' WHERE id = 1");
    } finally {
      app.release();
    }
    assert.equal(await partitionOf(db, 'again', 1), 'again_eu');
    assert.deepEqual(await journal(db, 'h_again'), [insert('1', 'created'), insert('2', 'created'), insert('3', 'created')]);
  });
});

describe('capture of each column type', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('tables_types');
    await db.query("CREATE TYPE order_state AS ENUM ('created', 'accepted', 'signed')");
    await db.query("CREATE DOMAIN state_name AS text CHECK (VALUE <> '')");
    await db.query('CREATE DOMAIN due_day AS date');
  });
  after(() => db.drop());

  // Each case: the columns (partitioned by state), the two states, and the due dates as recorded;
  // undefined where they depend on the session's TimeZone (timestamptz), asked of the server then.
  const cases = [
    {
      name: 'bigint id, text state, date due',
      id: 'bigint',
      state: 'text',
      due: 'date',
      states: ['created', 'signed'],
      dues: ['2027-01-02', '2027-02-03'],
    },
    {
      name: 'integer id, varchar state, timestamp due',
      id: 'integer',
      state: 'varchar(20)',
      due: 'timestamp',
      states: ['created', 'signed'],
      dues: ['2027-01-02T03:04:05', '2027-02-03T04:05:06'],
    },
    { name: 'uuid id, enum state, timestamptz due', id: 'uuid', state: 'order_state', due: 'timestamptz', states: ['created', 'signed'] },
    {
      name: 'text id, domain state, domain over date due',
      id: 'text',
      state: 'state_name',
      due: 'due_day',
      states: ['created', 'signed'],
      dues: ['2027-01-02', '2027-02-03'],
    },
    // An integer code is recorded as its digits: transitions in the config name them as strings.
    {
      name: 'varchar id, integer code state, timestamptz due',
      id: 'varchar(36)',
      state: 'smallint',
      due: 'timestamptz',
      states: ['1', '3'],
    },
  ];
  cases.forEach((c, index) => {
    it(`${c.name}: values recorded as text, a move as one UPDATE`, async () => {
      const table = `typed_${index}`;
      const schema = `h_typed_${index}`;
      await db.query(`CREATE TABLE ${table} (id ${c.id}, state ${c.state} NOT NULL, due ${c.due}, PRIMARY KEY (id, state))
        PARTITION BY LIST (state)`);
      await db.query(`CREATE TABLE ${table}_a PARTITION OF ${table} FOR VALUES IN ('${c.states[0]}')`);
      await db.query(`CREATE TABLE ${table}_b PARTITION OF ${table} FOR VALUES IN ('${c.states[1]}')`);
      await migrateFor(db, schema, { table, dueDateColumn: 'due' });
      const id = c.id === 'uuid' ? 'a81bc81b-dead-4e5d-abff-90865d1e13b1' : '42';
      const [first, second] = ['2027-01-02 03:04:05+00', '2027-02-03 04:05:06+00'];
      await db.query(`INSERT INTO ${table} VALUES ($1, $2, $3)`, [id, c.states[0], first]);
      await db.query(`UPDATE ${table} SET state = $2, due = $3 WHERE id = $1`, [id, c.states[1], second]);
      assert.equal(await partitionOf(db, table, id), `${table}_b`);
      const asRecorded = async (at: string) =>
        (await db.query<{ due: string }>(`SELECT to_jsonb($1::timestamptz) #>> '{}' AS due`, [at]))[0]!.due;
      const [oldDue, newDue] = c.dues ?? [await asRecorded(first), await asRecorded(second)];
      const [from, to] = c.states as [string, string];
      assert.deepEqual(await journal(db, schema), [insert(id, from, oldDue), update(id, from, to, oldDue, newDue)]);
    });
  });

  it('a composite key: refused in one line, and a generated column of the key is captured as the order id', async () => {
    await db.query(`CREATE TABLE keyed (tenant text, number integer, state text NOT NULL,
      order_key text GENERATED ALWAYS AS (tenant || '/' || number) STORED, PRIMARY KEY (tenant, number))`);
    const refused = await run([
      'migrate',
      '--config',
      writeConfig({ database: { url: db.url, schema: 'h_keyed' }, orders: { table: 'keyed', idColumn: ['tenant', 'number'] } }),
    ]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /^order-webhooks: config error: orders\.idColumn: expected one column: a composite key is not supported.*generated column/,
    );
    assert.equal(refused.stderr.trim().split('\n').length, 1);
    await migrateFor(db, 'h_keyed', { table: 'keyed', idColumn: 'order_key' });
    await db.query("INSERT INTO keyed (tenant, number, state) VALUES ('acme', 7, 'created')");
    assert.deepEqual(await journal(db, 'h_keyed'), [insert('acme/7', 'created')]);
  });
});

describe('migrate refuses what it cannot capture, in one line, changing nothing', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('tables_refused');
    await db.query(
      `CREATE TABLE plain (id integer PRIMARY KEY, state text, due date, doc jsonb, flag boolean, tags text[], due_text text)`,
    );
    await db.query('CREATE VIEW plain_view AS SELECT * FROM plain');
    await db.query('CREATE MATERIALIZED VIEW plain_snapshot AS SELECT * FROM plain');
    // A foreign table needs no extension: a wrapper without handler is enough to declare one.
    await db.query('CREATE FOREIGN DATA WRAPPER nowhere');
    await db.query('CREATE SERVER elsewhere FOREIGN DATA WRAPPER nowhere');
    await db.query('CREATE FOREIGN TABLE remote_orders (id integer, state text) SERVER elsewhere');
    await db.query(`CREATE TABLE split (id integer, state text NOT NULL) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE split_open PARTITION OF split FOR VALUES IN ('created')");
    await db.query("CREATE FOREIGN TABLE split_archive PARTITION OF split FOR VALUES IN ('signed') SERVER elsewhere");
    await db.query(`CREATE TABLE parted (id integer, state text NOT NULL) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE parted_open PARTITION OF parted FOR VALUES IN ('created')");
    await db.query('CREATE TABLE legacy (id integer, state text)');
    await db.query('CREATE TABLE legacy_2026 () INHERITS (legacy)');
    await db.query('CREATE DOMAIN document AS jsonb');
    await db.query('ALTER TABLE plain ADD COLUMN doc_state document');
  });
  after(() => db.drop());

  const cases: [string, object, RegExp][] = [
    ['a view', { table: 'plain_view' }, /orders\.table: "public"\."plain_view" is a view; name the table the order app writes to$/],
    ['a materialized view', { table: 'plain_snapshot' }, /orders\.table: "public"\."plain_snapshot" is a materialized view/],
    [
      'a foreign table',
      { table: 'remote_orders' },
      /orders\.table: "public"\."remote_orders" is a foreign table; changes made on its own server never run triggers here/,
    ],
    [
      'a foreign partition',
      { table: 'split' },
      /orders\.table: partition "public"\."split_archive" of "public"\."split" is a foreign table/,
    ],
    [
      'a partition',
      { table: 'parted_open' },
      /orders\.table: "public"\."parted_open" is a partition of "public"\."parted"; name the partitioned table/,
    ],
    ['inheritance children', { table: 'legacy' }, /orders\.table: "public"\."legacy" has inheritance children \("public"\."legacy_2026"\)/],
    ['a missing table', { table: 'nope' }, /orders\.table: table "public"\."nope" does not exist/],
    ['a missing column', { table: 'plain', stateColumn: 'status' }, /orders\.stateColumn: column "status" not found in "public"\."plain"/],
    ['a jsonb id', { table: 'plain', idColumn: 'doc' }, /orders\.idColumn: column "doc" is jsonb; expected an integer, uuid or text type$/],
    [
      'a boolean state',
      { table: 'plain', stateColumn: 'flag' },
      /orders\.stateColumn: column "flag" is boolean; expected text, varchar, an enum type or an integer code$/,
    ],
    ['an array state', { table: 'plain', stateColumn: 'tags' }, /orders\.stateColumn: column "tags" is text\[\]; expected/],
    [
      'a domain over jsonb',
      { table: 'plain', stateColumn: 'doc_state' },
      /orders\.stateColumn: column "doc_state" is document \(a domain over jsonb\); expected/,
    ],
    [
      'a text due date',
      { table: 'plain', dueDateColumn: 'due_text' },
      /orders\.dueDateColumn: column "due_text" is text; expected date or timestamp/,
    ],
  ];
  for (const [what, orders, message] of cases) {
    it(`refuses ${what}`, async () => {
      const schema = 'h_refused';
      const result = await run(['migrate', '--config', writeConfig({ database: { url: db.url, schema }, orders })]);
      assert.equal(result.code, 2, result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^order-webhooks: migrate: /);
      assert.match(lines[0]!, message);
      assert.deepEqual(await db.query('SELECT to_regnamespace($1) AS schema', [schema]), [{ schema: null }], 'no schema created');
      assert.deepEqual(await db.query("SELECT tgname FROM pg_trigger WHERE tgname LIKE 'h_refused%'"), [], 'no trigger created');
    });
  }
});

describe('sessions with session_replication_role = replica', () => {
  let db: TestDatabase;
  const target = (schema: string, replicaSessions: 'skip' | 'capture') => ({
    schema,
    orders: { schema: 'public', table: 'orders', idColumn: 'id', stateColumn: 'state', replicaSessions },
  });
  /** Runs statements in one session as a replication tool or a bulk load would. */
  const asReplica = async (...statements: string[]) => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      await client.query('SET session_replication_role = replica');
      for (const sql of statements) await client.query(sql);
    } finally {
      await client.end();
    }
  };
  before(async () => {
    db = await createTestDatabase('tables_replica');
    await db.query(`CREATE TABLE orders (id integer, state text NOT NULL, PRIMARY KEY (id, state)) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE orders_open PARTITION OF orders FOR VALUES IN ('created', 'accepted')");
    await db.query('CREATE TABLE orders_done PARTITION OF orders DEFAULT');
  });
  after(() => db.drop());

  it('by default (replicaSessions skip) their changes are not captured, and the status says origin', async () => {
    await migrateFor(db, 'h_skip', {});
    await asReplica("INSERT INTO orders VALUES (1, 'created')");
    await db.query("INSERT INTO orders VALUES (2, 'created')");
    assert.deepEqual(await journal(db, 'h_skip'), [insert('2', 'created')]);
    const status = await captureTriggerStatus(db.pool, target('h_skip', 'skip'));
    assert.equal(status.mode, 'origin');
    assert.deepEqual(status.problems, []);
    assert.ok(status.triggers.every((t) => t.enabled === 'O'));
  });

  it('with replicaSessions capture the triggers fire ALWAYS, on partitions added later too, and moves stay one UPDATE', async () => {
    await migrateFor(db, 'h_always', { replicaSessions: 'capture' });
    await db.query("CREATE TABLE orders_gone PARTITION OF orders FOR VALUES IN ('canceled')");
    const status = await captureTriggerStatus(db.pool, target('h_always', 'capture'));
    assert.equal(status.mode, 'always');
    assert.deepEqual(status.problems, []);
    assert.deepEqual(
      [...new Set(status.triggers.map((t) => t.table))],
      ['orders', 'orders_done', 'orders_gone', 'orders_open'].map((t) => `"public"."${t}"`),
    );
    assert.ok(status.triggers.every((t) => t.enabled === 'A'));
    await asReplica(
      "INSERT INTO orders VALUES (10, 'created')",
      "UPDATE orders SET state = 'canceled' WHERE id = 10",
      'BEGIN',
      'DELETE FROM orders WHERE id = 10',
      "INSERT INTO orders VALUES (10, 'created')",
      'COMMIT',
    );
    assert.deepEqual(await journal(db, 'h_always'), [
      insert('10', 'created'),
      update('10', 'created', 'canceled'),
      insert('10', 'created'),
    ]);
    // The other install (skip) saw none of it.
    assert.deepEqual(
      (await journal(db, 'h_skip')).map((r) => r.order_id),
      ['2'],
    );
  });

  it('migrate back to skip re-installs the triggers as ordinary ones', async () => {
    await migrateFor(db, 'h_always', { replicaSessions: 'skip' });
    const status = await captureTriggerStatus(db.pool, target('h_always', 'skip'));
    assert.equal(status.mode, 'origin');
    assert.deepEqual(status.problems, []);
  });

  it('the status names each table where a DBA disabled our trigger, or where it fires otherwise than configured', async () => {
    await db.query('ALTER TABLE orders_open DISABLE TRIGGER h_skip_capture_insert');
    let status = await captureTriggerStatus(db.pool, target('h_skip', 'skip'));
    assert.equal(status.mode, 'mixed');
    assert.deepEqual(status.problems, [
      {
        code: 'trigger_disabled',
        level: 'error',
        message:
          'capture trigger disabled on "public"."orders_open" (h_skip_capture_insert): its order changes are not captured; ALTER TABLE "public"."orders_open" ENABLE TRIGGER <name>',
      },
    ]);
    await db.query('ALTER TABLE orders DISABLE TRIGGER USER');
    status = await captureTriggerStatus(db.pool, target('h_skip', 'skip'));
    assert.equal(status.mode, 'disabled');
    assert.deepEqual(
      status.problems.map((p) => p.message.replace(/ \(.*\)/, '')),
      ['orders', 'orders_done', 'orders_gone', 'orders_open'].map(
        (t) =>
          `capture trigger disabled on "public"."${t}": its order changes are not captured; ALTER TABLE "public"."${t}" ENABLE TRIGGER <name>`,
      ),
    );
    for (const kind of ['insert', 'update', 'delete', 'delete_end', 'insert_start']) {
      await db.query(`ALTER TABLE orders ENABLE ALWAYS TRIGGER h_skip_capture_${kind}`);
    }
    status = await captureTriggerStatus(db.pool, target('h_skip', 'capture'));
    assert.deepEqual(status.problems, [], 'fires always, as a config with replicaSessions capture wants');
    status = await captureTriggerStatus(db.pool, target('h_skip', 'skip'));
    assert.equal(status.mode, 'always');
    assert.deepEqual(
      status.problems.map((p) => [p.code, p.level]),
      Array.from({ length: 4 }, () => ['trigger_always', 'warn']),
    );
    await db.query('ALTER TABLE orders ENABLE REPLICA TRIGGER h_skip_capture_update');
    status = await captureTriggerStatus(db.pool, target('h_skip', 'capture'));
    assert.match(
      status.problems[0]!.message,
      /^capture trigger fires only in replica sessions on "public"\."orders" \(h_skip_capture_update\)/,
    );
    assert.equal(status.problems[0]!.code, 'trigger_replica_only');
    await db.query('ALTER TABLE orders ENABLE TRIGGER USER');
  });
});

describe('the service on a partitioned orders table', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('tables_service');
    // Open orders by due date (no due date: the default partition), finished ones apart.
    await db.query(`CREATE TABLE orders (id uuid DEFAULT gen_random_uuid(), state text NOT NULL DEFAULT 'created', due_date date,
      note text) PARTITION BY LIST (state)`);
    await db.query("CREATE TABLE orders_open PARTITION OF orders FOR VALUES IN ('created', 'accepted') PARTITION BY RANGE (due_date)");
    await db.query("CREATE TABLE orders_open_2027 PARTITION OF orders_open FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')");
    await db.query('CREATE TABLE orders_open_other PARTITION OF orders_open DEFAULT');
    await db.query('CREATE TABLE orders_done PARTITION OF orders DEFAULT');
  });
  after(() => db.drop());

  it('sends each order’s true events in order (each order moves twice), and logs while a DBA has our trigger disabled', async () => {
    const receiver = await startReceiver();
    const config = writeConfig({
      webHook: { enabled: true, endpoint: receiver.url },
      database: { url: db.url, pollInterval: 'PT0.5S', captureCheckInterval: 'PT0.3S' },
      orders: { dueDateColumn: 'due_date' },
    });
    assert.equal((await run(['migrate', '--config', config])).code, 0);
    const service = await startService(config);
    try {
      const ids = await playOrders(db, 20);
      await receiver.waitForCount(80);
      // Recorded too: an event sent straight from the journal has its outbox row, and its change is
      // deleted, only when its result is written, a moment after the receiver has it.
      const unrecorded = "SELECT 1 FROM order_webhooks.outbox WHERE status <> 'delivered' UNION ALL SELECT 1 FROM order_webhooks.change";
      await waitFor(async () => (await db.query(unrecorded)).length === 0, {
        what: 'all delivered',
      });
      const check = await checkDeliveries(db, receiver.requests, ids);
      assert.equal(check.events, 80);

      await db.query('ALTER TABLE orders_done DISABLE TRIGGER order_webhooks_capture_insert');
      const disabled =
        /"level":50,[^\n]*"msg":"capture trigger disabled on \\"public\\"\.\\"orders_done\\" \(order_webhooks_capture_insert\)/g;
      await waitFor(() => (service.output().match(disabled)?.length ?? 0) >= 2, { what: 'the error logged at two checks in a row' });
      await db.query('ALTER TABLE orders_done ENABLE TRIGGER order_webhooks_capture_insert');
      await service.waitForLog('"msg":"capture triggers fire again as configured"');
    } finally {
      await service.stop();
      await receiver.close();
    }
  });
});

describe('an installed trigger that is incomplete', () => {
  let db: TestDatabase;
  before(async () => {
    db = await createTestDatabase('tables_incomplete');
    await db.query(`CREATE TABLE orders (id integer PRIMARY KEY, state text NOT NULL)`);
  });
  after(() => db.drop());

  it('start refuses, naming migrate, which installs it again', async () => {
    const config = writeConfig({ webHook: { enabled: true, endpoint: 'http://127.0.0.1:1/x' }, database: { url: db.url } });
    assert.equal((await run(['migrate', '--config', config])).code, 0);
    // As an install by an earlier release (two triggers) looks, or one a DBA dropped.
    await db.query('DROP TRIGGER order_webhooks_capture_delete ON orders');
    const refused = await run(['start', '--config', config]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(
      refused.stderr,
      /the capture trigger on "public"\."orders" was installed for another config or release: run `order-webhooks migrate`/,
    );
    const again = await run(['migrate', '--config', config]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /capture trigger installed/);
    assert.equal((await db.query("SELECT 1 FROM pg_trigger WHERE tgname LIKE 'order_webhooks_capture_%'")).length, 5);
  });
});
