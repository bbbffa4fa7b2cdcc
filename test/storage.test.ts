// What each event keeps on disk (migration 11): an event delivered at its first try is one outbox
// row, with no attempt row and no body of its own, and reads as before in every view; an outbox
// filled by earlier versions migrates without a row or an index rewritten, and reads as before too.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventBody } from '../src/mapping/mapping.ts';
import { lastSuccessSql } from '../src/outbox/status.ts';
import { listMigrations } from '../src/schema/migrate.ts';
import { run } from './helpers/cli.ts';
import { waitFor } from './helpers/poll.ts';
import { outbox, type Stack, stacksClosedAfter } from './helpers/stack.ts';

const S = 'order_webhooks';
/** Delivered events (each with its attempt row) that the version-10 outbox is filled with. */
const FILLED = 300_000;

interface AttemptView {
  event_id: string;
  attempt: number;
  started_at: Date;
  duration_ms: number;
  http_status: number | null;
  outcome: string;
}

function attemptsOf(s: Stack, eventId: string): Promise<AttemptView[]> {
  return s.db.query<AttemptView>(
    `SELECT event_id::text, attempt, started_at, duration_ms, http_status, outcome FROM ${S}.attempts WHERE event_id = $1 ORDER BY attempt`,
    [eventId],
  );
}

/** Takes a migrated schema back to version 10: migration 9's views and replay function, a body in every row. */
async function backToVersion10(s: Stack): Promise<void> {
  const v9 = listMigrations(S).find((m) => m.version === 9)!.sql;
  await s.db.query(v9);
  await s.db.query(`DROP FUNCTION ${S}.event_body(text, text);
    ALTER TABLE ${S}.outbox DROP COLUMN first_try, ALTER COLUMN body SET NOT NULL, SET (fillfactor = 80);
    DELETE FROM ${S}.migration WHERE version >= 11`);
}

/** The files of the outbox, the attempts and their indexes: a rewrite or a rebuild gives one a new file. */
async function fileNodes(s: Stack): Promise<Record<string, string>> {
  const rows = await s.db.query<{ name: string; node: string }>(
    `SELECT c.relname AS name, c.relfilenode::text AS node FROM pg_class c
      WHERE c.oid IN ('${S}.outbox'::regclass, '${S}.outbox_attempt'::regclass)
         OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN ('${S}.outbox'::regclass, '${S}.outbox_attempt'::regclass))`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.node]));
}

async function explain(s: Stack, sql: string): Promise<string> {
  return (await s.db.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`)).map((r) => r['QUERY PLAN']).join('\n');
}

describe('storage', () => {
  const stack = stacksClosedAfter();

  it('an event delivered at its first try is one outbox row; a retried one keeps its attempts; both read as before, and replay', async () => {
    const s = await stack('first_try');
    let refuse = 1;
    s.receiver.respond = (_req, res) => {
      if (refuse-- > 0) {
        res.writeHead(503);
        res.end('busy');
      } else res.end('ok');
    };
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    await waitFor(async () => (await outbox(s.db)).some((r) => r.status === 'delivered'), { what: 'the retried event delivered' });
    await s.db.query("INSERT INTO orders (state) VALUES ('created')");
    const rows = await waitFor(
      async () => {
        const r = await outbox(s.db);
        return r.length === 2 && r.every((row) => row.status === 'delivered') && r;
      },
      { what: 'both delivered' },
    );
    const [retried, firstTry] = rows as [(typeof rows)[0], (typeof rows)[0]];
    assert.equal(retried.attempts, 2);
    assert.equal(firstTry.attempts, 1);
    const stored = await s.db.query<{ body: string | null; attempts: number }>(
      `SELECT o.body, (SELECT count(*)::int FROM ${S}.outbox_attempt a WHERE a.outbox_id = o.id) AS attempts FROM ${S}.outbox o ORDER BY o.id`,
    );
    assert.deepEqual(stored, [
      { body: null, attempts: 2 },
      { body: null, attempts: 0 },
    ]);
    // The body sent is the body shown, made from the row.
    const sent = s.receiver.requests.find((r) => r.headers['x-event-id'] === firstTry.event_id)!;
    const [shown] = await s.db.query<{ body: string; unrecorded: number }>(
      `SELECT body, unrecorded_attempts AS unrecorded FROM ${S}.events WHERE event_id = $1`,
      [firstTry.event_id],
    );
    assert.equal(shown!.body, sent.body);
    assert.equal(shown!.unrecorded, 0);
    // Its attempt, read from its outbox row.
    assert.deepEqual(await attemptsOf(s, firstTry.event_id), [
      {
        event_id: firstTry.event_id,
        attempt: 1,
        started_at: firstTry.delivered_at,
        duration_ms: firstTry.response_ms,
        http_status: 200,
        outcome: 'delivered',
      },
    ]);
    assert.deepEqual(
      (await attemptsOf(s, retried.event_id)).map((a) => [a.attempt, a.outcome, a.http_status]),
      [
        [1, 'http_status', 503],
        [2, 'delivered', 200],
      ],
    );
    const shown2 = await run(['outbox', 'show', firstTry.event_id, '--json', '--config', s.configPath]);
    assert.equal(shown2.code, 0, shown2.stderr);
    const detail = JSON.parse(shown2.stdout);
    assert.equal(detail.body, sent.body);
    assert.deepEqual(
      detail.attemptRows.map((a: { attempt: number; outcome: string }) => [a.attempt, a.outcome]),
      [[1, 'delivered']],
    );

    // Replayed, it keeps its first attempt (now a row of its own) and is sent again as attempt 2.
    const [replayed] = await s.db.query<{ n: number }>(`SELECT ${S}.replay_event($1) AS n`, [firstTry.event_id]);
    assert.equal(replayed!.n, 1);
    await s.receiver.waitForCount(4);
    await waitFor(async () => (await outbox(s.db)).every((r) => r.status === 'delivered'), { what: 'the replay delivered' });
    const again = s.receiver.requests.at(-1)!;
    assert.equal(again.headers['x-event-id'], firstTry.event_id);
    assert.equal(again.headers['x-event-attempt'], '2');
    assert.equal(again.body, sent.body, 'the same bytes, so the same signature');
    const after = await attemptsOf(s, firstTry.event_id);
    assert.deepEqual(
      after.map((a) => [a.attempt, a.outcome, a.http_status]),
      [
        [1, 'delivered', 200],
        [2, 'delivered', 200],
      ],
    );
    assert.equal(after[0]!.started_at.getTime(), firstTry.delivered_at!.getTime());
  });

  it('event_body makes the body byte for byte as the service does, whatever the order id holds', async () => {
    const s = await stack('event_body', { startNow: false });
    const controls = Array.from({ length: 32 }, (_, n) => String.fromCharCode(n + 1 === 32 ? 0x7f : n + 1));
    const ids = ['A-1', 'say "hi"', 'back\\slash', 'a/b', 'é€😀', 'line\u2028sep', ...controls.map((c) => `x${c}y`)];
    for (const orderId of ids) {
      const [row] = await s.db.query<{ body: string }>(`SELECT ${S}.event_body($1, 'OrderSigned') AS body`, [orderId]);
      assert.equal(row!.body, eventBody(orderId, 'OrderSigned'), JSON.stringify(orderId));
    }
  });

  it(`migrates a version-10 outbox of ${FILLED.toLocaleString('en-US')} events without rewriting it, and reads it as before`, async () => {
    const s = await stack('migrate_filled', { startNow: false });
    await backToVersion10(s);
    // As version 10 wrote them: every event with its body and its attempt rows. Delivered ones over
    // the last day; three failed after three attempts; one pending its retry.
    await s.db.query(
      `INSERT INTO ${S}.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, last_status, response_ms, created_at, delivered_at)
       SELECT i, 'o' || (i % 50000), 'OrderCreated', '{"orderId":"o' || (i % 50000) || '","eventType":"OrderCreated"}', 'delivered', 1, NULL,
              200, 3, now() - interval '1 day' + i * interval '250 ms', now() - interval '1 day' + i * interval '250 ms'
         FROM generate_series(1, $1::int) i`,
      [FILLED],
    );
    await s.db.query(
      `INSERT INTO ${S}.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status)
       SELECT id, event_id, 1, delivered_at, 3, 200 FROM ${S}.outbox`,
    );
    await s.db.query(
      `WITH f AS (
         INSERT INTO ${S}.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, last_status, last_error, last_error_kind, response_ms)
         SELECT i, 'f' || i, 'OrderSigned', '{"orderId":"f' || i || '","eventType":"OrderSigned"}', CASE WHEN i < 4 THEN 'failed' ELSE 'pending' END,
                CASE WHEN i < 4 THEN 3 ELSE 1 END, CASE WHEN i < 4 THEN NULL ELSE now() + interval '1 hour' END,
                503, 'http: 503 Service Unavailable', 'http_status', 5
           FROM generate_series(1, 4) i
         RETURNING id, event_id, attempts)
       INSERT INTO ${S}.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind)
       SELECT f.id, f.event_id, n, now() - interval '1 minute', 5, 503, 'http: 503 Service Unavailable', 'http_status'
         FROM f, generate_series(1, f.attempts) n`,
    );
    await s.db.query(`VACUUM ANALYZE ${S}.outbox, ${S}.outbox_attempt`);
    const files = await fileNodes(s);

    const started = Date.now();
    const migrated = await run(['migrate', '--config', s.configPath]);
    const seconds = (Date.now() - started) / 1000;
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /applied 11_compact_outbox/);
    // Catalog changes only: every file as it was (no rewrite, no index built); the command's own
    // start takes most of the time.
    assert.deepEqual(await fileNodes(s), files);
    assert.ok(seconds < 15, `migrate took ${seconds} s`);

    // Every old event reads as before: its body, its attempts, nothing unrecorded, none doubled.
    const [reads] = await s.db.query<{ events: number; stored: number; unrecorded: number; attempts: number; rows: number }>(
      `SELECT (SELECT count(*)::int FROM ${S}.events) AS events,
              (SELECT count(*)::int FROM ${S}.events e JOIN ${S}.outbox o ON o.id = e.outbox_id WHERE e.body = o.body) AS stored,
              (SELECT count(*)::int FROM ${S}.events WHERE unrecorded_attempts <> 0) AS unrecorded,
              (SELECT count(*)::int FROM ${S}.attempts) AS attempts,
              (SELECT count(*)::int FROM ${S}.outbox_attempt) AS rows`,
    );
    assert.deepEqual(reads, { events: FILLED + 4, stored: FILLED + 4, unrecorded: 0, attempts: FILLED + 10, rows: FILLED + 10 });
    const status = await run(['status', '--json', '--config', s.configPath]);
    const json = JSON.parse(status.stdout);
    assert.deepEqual({ pending: json.outbox.pending, failed: json.outbox.failed }, { pending: 1, failed: 3 });
    // Past 10,000 delivered events status shows PostgreSQL's estimate (src/outbox/history.ts), marked so.
    assert.equal(json.deliveredEstimated, true);
    assert.ok(Math.abs(json.outbox.delivered - FILLED) <= FILLED / 100, `delivered ${json.outbox.delivered}`);
    const list = await run(['outbox', 'list', '--order', 'o7', '--json', '--config', s.configPath]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(JSON.parse(list.stdout).length, FILLED / 50000);

    // The operators' questions by time, by event and by order stay in the indexes, on old rows
    // (which have attempt rows) as on new ones (which have none).
    for (const sql of [
      `SELECT count(*) FROM ${S}.attempts WHERE started_at > now() - interval '10 minutes'`,
      `SELECT outcome, count(*) FROM ${S}.attempts WHERE outcome <> 'delivered' AND started_at > now() - interval '1 hour' GROUP BY 1`,
      lastSuccessSql(S).replaceAll('$1', "'default'"),
      `SELECT date_trunc('minute', started_at), count(*) FROM ${S}.attempts WHERE started_at > now() - interval '1 hour' GROUP BY 1`,
      `SELECT * FROM ${S}.attempts WHERE event_id = '01a236fd-1415-7fea-a22b-ea5cdb3e1592'`,
      `SELECT * FROM ${S}.events WHERE order_id = 'o7'`,
    ]) {
      const plan = await explain(s, sql);
      assert.doesNotMatch(plan, /Seq Scan on (outbox|outbox_attempt) /, `${sql}\n${plan}`);
    }

    // The service delivers on the migrated outbox: the new events keep one row each.
    await s.start();
    await s.db.query("INSERT INTO orders (state) SELECT 'created' FROM generate_series(1, 20)");
    await s.receiver.waitForCount(20);
    const fresh = await waitFor(
      async () => {
        const r = await s.db.query<{ body: string | null; attempts: number }>(
          `SELECT o.body, (SELECT count(*)::int FROM ${S}.outbox_attempt a WHERE a.outbox_id = o.id) AS attempts
             FROM ${S}.outbox o WHERE o.status = 'delivered' AND o.id > (SELECT max(id) - 20 FROM ${S}.outbox)`,
        );
        return r.length === 20 && r;
      },
      { what: 'the new events delivered' },
    );
    assert.ok(fresh.every((r) => r.body === null && r.attempts === 0));
    const recently = await run(['status', '--json', '--config', s.configPath]);
    assert.equal(JSON.parse(recently.stdout).deliveredLast5Minutes, 20);
  });
});
