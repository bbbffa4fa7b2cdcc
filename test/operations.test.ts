// The operator commands (status, outbox, replay, purge, check, uninstall) and the psql views and
// functions behind them, against a real database, a real receiver and the real bin.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { BIN, run, writeConfig } from './helpers/cli.ts';
import { createOrdersTable, createTestDatabase } from './helpers/db.ts';
import { startHttpsReceiver, type HttpsReceiver } from './helpers/httpsServer.ts';
import { ORDER_LIFE, playOrder } from './helpers/orders.ts';
import { makePki, PASSWORD, type Pki } from './helpers/pki.ts';
import { waitFor } from './helpers/poll.ts';
import { startReceiver } from './helpers/receiver.ts';
import { outbox, type Stack, stacksClosedAfter } from './helpers/stack.ts';

const SECRET = 'OpsSecret-7hq2xv';
const KEY = 'OpsUrlKey-k93mz';
const secretHook = { secret: SECRET, key: KEY };

/** No secret in anything a command printed. */
function assertNoSecret(...outputs: string[]): void {
  for (const output of outputs) {
    for (const secret of [SECRET, KEY]) assert.ok(!output.includes(secret), `a secret leaked into: ${output}`);
  }
}

async function cli(s: Stack, ...args: string[]) {
  const result = await run([...args, '--config', s.configPath]);
  assertNoSecret(result.stdout, result.stderr);
  return result;
}

async function json(s: Stack, ...args: string[]) {
  const result = await cli(s, ...args, '--json');
  return { ...result, body: result.stdout ? JSON.parse(result.stdout) : undefined };
}

async function allDelivered(s: Stack, count: number) {
  await waitFor(
    async () => {
      const rows = await outbox(s.db);
      return rows.length === count && rows.every((r) => r.status === 'delivered');
    },
    { what: `${count} events delivered`, timeoutMs: 30_000 },
  );
}

describe('operations', () => {
  const stack = stacksClosedAfter();

  it('every command has --help, and --help lists them all', async () => {
    const top = await run(['--help']);
    assert.equal(top.code, 0);
    for (const command of ['migrate', 'start', 'status', 'outbox', 'replay', 'purge', 'check', 'uninstall', 'demo']) {
      assert.match(top.stdout, new RegExp(`^  ${command}\\b`, 'm'), `${command} listed`);
    }
    for (const command of [['status'], ['outbox', 'list'], ['outbox', 'show'], ['replay'], ['purge'], ['check'], ['uninstall']]) {
      const help = await run([...command, '--help']);
      assert.equal(help.code, 0, command.join(' '));
      assert.match(help.stdout, /--config/, `${command.join(' ')} --help names --config`);
      assert.match(help.stdout, /--json/, `${command.join(' ')} --help names --json`);
    }
  });

  it('status: all well is exit 0, in text and JSON; endpoint redacted, no secret anywhere', async () => {
    const s = await stack('ops_status', { webHook: secretHook });
    const orderId = await playOrder(s.db);
    await allDelivered(s, ORDER_LIFE.length);
    const text = await cli(s, 'status');
    assert.equal(text.code, 0, text.stdout + text.stderr);
    assert.match(text.stdout, /webhooks\s*│\s*enabled/);
    assert.match(text.stdout, /key=REDACTED/);
    assert.match(text.stdout, /enabled on "public"\."orders"/);
    assert.match(text.stdout, /0 pending, 4 delivered, 0 failed/);
    assert.match(text.stdout, /^ok$/m);
    const { code, body } = await json(s, 'status');
    assert.equal(code, 0);
    assert.equal(body.ok, true);
    assert.deepEqual(body.outbox, { pending: 0, delivered: 4, failed: 0 });
    assert.equal(body.schema.current, true);
    assert.equal(body.trigger.condition, 'enabled');
    assert.equal(body.trigger.matchesConfig, true);
    assert.equal(body.deliveredLast5Minutes, 4);
    assert.equal(body.lastFailure, null);
    assert.equal(body.instances, 1, 'the running service');
    assert.equal(body.journalBacklog, 0);

    // outbox list and show, while we are here.
    const listed = await json(s, 'outbox', 'list', '--order', orderId);
    assert.equal(listed.code, 0);
    assert.deepEqual(
      listed.body.map((e: { eventType: string }) => e.eventType),
      ORDER_LIFE,
      'one order: in its original order',
    );
    const table = await cli(s, 'outbox', 'list', '--event-type', 'OrderSigned');
    assert.equal(table.code, 0);
    assert.match(table.stdout, new RegExp(`${listed.body[3].eventId}.*OrderSigned.*delivered`));
    assert.doesNotMatch(table.stdout, /OrderCreated/);
    assert.equal((await json(s, 'outbox', 'list', '--since', 'PT1H')).body.length, 4);
    assert.deepEqual((await json(s, 'outbox', 'list', '--until', 'PT1H')).body, []);
    const limited = await json(s, 'outbox', 'list', '--limit', '2');
    assert.deepEqual(
      limited.body.map((e: { eventType: string }) => e.eventType),
      ['OrderSigned', 'OrderDueDateUpdated'],
      'newest first',
    );
    assert.match((await cli(s, 'outbox', 'list', '--limit', '2')).stderr, /^2 event\(s\) \(--limit 2; there may be more\)$/m);
    const none = await json(s, 'outbox', 'list', '--status', 'failed');
    assert.deepEqual(none.body, []);
    const shown = await json(s, 'outbox', 'show', listed.body[0].eventId);
    assert.equal(shown.code, 0);
    assert.equal(shown.body.body, JSON.parse(JSON.stringify(s.receiver.requests[0]!.body)));
    assert.equal(shown.body.attemptRows.length, 1);
    assert.equal(shown.body.attemptRows[0].outcome, 'delivered');
    assert.equal(shown.body.attemptRows[0].httpStatus, 200);
    const shownText = await cli(s, 'outbox', 'show', listed.body[0].eventId);
    assert.match(shownText.stdout, /OrderCreated/);
    assert.match(shownText.stdout, /│ 1\s*│ delivered\s*│/);
    const unknown = await cli(s, 'outbox', 'show', '01890000-0000-7000-8000-000000000000');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no event/);
    const bad = await cli(s, 'outbox', 'list', '--status', 'lost');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--status: expected one of pending, delivered, failed/);
  });

  it('status is non-zero when the trigger is disabled or dropped behind our back, and when lag is over --max-lag', async () => {
    const s = await stack('ops_trigger', { startNow: false });
    assert.equal((await cli(s, 'status')).code, 0);
    await s.db.query('ALTER TABLE orders DISABLE TRIGGER order_webhooks_capture_update');
    const disabled = await json(s, 'status');
    assert.equal(disabled.code, 1);
    assert.equal(disabled.body.trigger.condition, 'disabled');
    assert.match(disabled.body.attention.join('\n'), /capture trigger disabled/);
    const text = await cli(s, 'status');
    assert.equal(text.code, 1);
    assert.match(text.stdout, /needs attention: capture trigger disabled on "public"\."orders"/);
    await s.db.query('ALTER TABLE orders ENABLE TRIGGER order_webhooks_capture_update');
    assert.equal((await cli(s, 'status')).code, 0);
    await s.db.query('DROP TRIGGER order_webhooks_capture_insert ON orders');
    const dropped = await json(s, 'status');
    assert.equal(dropped.code, 1);
    assert.equal(dropped.body.trigger.condition, 'partly installed');
    const check = await cli(s, 'check');
    assert.equal(check.code, 1);
    // What start says first (it refuses a damaged schema), and what the trigger's state is.
    assert.match(
      check.stdout,
      /^failed\s+schema\s+schema "order_webhooks" is damaged: trigger "order_webhooks_capture_insert" is missing: /m,
    );
    assert.match(
      check.stdout,
      /^failed\s+trigger\s+capture trigger order_webhooks_capture_insert missing on "public"\."orders": .*run `order-webhooks migrate`$/m,
    );
    for (const kind of ['update', 'delete', 'delete_end', 'insert_start'])
      await s.db.query(`DROP TRIGGER order_webhooks_capture_${kind} ON orders`);
    assert.equal((await json(s, 'status')).body.trigger.condition, 'missing');
    assert.equal((await cli(s, 'migrate')).code, 0);
    assert.equal((await cli(s, 'status')).code, 0, 'migrate put it back');

    // Lag: an order changed while no service runs, its event an hour old in the outbox.
    await playOrder(s.db);
    await s.start();
    await allDelivered(s, ORDER_LIFE.length);
    await s.service!.stop();
    const [first] = await outbox(s.db);
    assert.equal((await cli(s, 'replay', '--event', first!.event_id)).code, 0);
    await s.db.query("UPDATE order_webhooks.outbox SET created_at = now() - interval '1 hour' WHERE id = $1", [first!.id]);
    const lagging = await json(s, 'status', '--max-lag', 'PT5M');
    assert.equal(lagging.code, 1);
    assert.ok(lagging.body.lagSeconds >= 3600, String(lagging.body.lagSeconds));
    assert.match(lagging.body.attention.join('\n'), /lag 1h 0m is over --max-lag PT5M/);
    assert.equal((await cli(s, 'status', '--max-lag', 'PT2H')).code, 0);
    assert.equal((await cli(s, 'status', '--max-lag', 'soon')).code, 2);
  });

  it('replay --failed: failed events are delivered again in order, under their original ids, attempt numbers continuing', async () => {
    // The breaker off: these events must fail, not wait for the receiver to come back.
    const s = await stack('ops_replay_failed', { webHook: { ...secretHook, retry: { delays: ['PT0.2S'] }, circuitBreaker: false } });
    s.receiver.respond = (_request, response) => {
      response.statusCode = 503;
      response.end('down');
    };
    const orderId = await playOrder(s.db);
    await waitFor(
      async () => {
        const rows = await outbox(s.db);
        return rows.length === ORDER_LIFE.length && rows.every((r) => r.status === 'failed');
      },
      { what: 'every event failed', timeoutMs: 30_000 },
    );
    const before = await outbox(s.db);
    assert.ok(before.every((r) => r.attempts === 2));
    const failing = await json(s, 'status');
    assert.equal(failing.code, 1, 'failed events need attention');
    assert.equal(failing.body.outbox.failed, 4);
    assert.equal(failing.body.lastFailure.kind, 'http_status');
    assert.match(failing.body.attention.join('\n'), /4 failed event\(s\)/);
    const failures = await s.db.query('SELECT * FROM order_webhooks.failures ORDER BY created_at');
    assert.equal(failures.length, 4);
    assert.equal(failures[0]!.last_error_kind, 'http_status');

    s.receiver.requests.length = 0;
    s.receiver.respond = (_request, response) => response.end('ok');
    const replayed = await cli(s, 'replay', '--failed');
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.match(replayed.stdout, /^replay: 4 event\(s\) back to pending \(failed events\)$/m);
    assert.equal(replayed.stderr, '', 'no progress bar without a terminal');
    await allDelivered(s, ORDER_LIFE.length);
    const got = s.receiver.requests.filter((r) => JSON.parse(r.body).orderId === orderId);
    assert.deepEqual(
      got.map((r) => r.headers['x-event-id']),
      before.map((r) => r.event_id),
      'in order, under the original ids',
    );
    assert.ok(
      got.every((r) => r.headers['x-event-attempt'] === '3'),
      'attempt numbers continue',
    );
    const again = await json(s, 'replay', '--failed');
    assert.deepEqual(again.body, { replayed: 0 });
    assert.equal((await cli(s, 'status')).code, 0);
    const shown = await json(s, 'outbox', 'show', before[0]!.event_id);
    assert.deepEqual(
      shown.body.attemptRows.map((a: { outcome: string; httpStatus: number }) => `${a.outcome} ${a.httpStatus}`),
      ['http_status 503', 'http_status 503', 'delivered 200'],
    );
    assert.ok(shown.body.replayedAt);
  });

  it('replay by time range (a receiver that answered 200 to everything), by order and by event; pending events are left alone', async () => {
    const s = await stack('ops_replay_range');
    const early = await playOrder(s.db);
    await allDelivered(s, 4);
    const [{ now: from }] = (await s.db.query<{ now: Date }>('SELECT now()')) as [{ now: Date }];
    const lost = await playOrder(s.db);
    await allDelivered(s, 8);
    const [{ now: to }] = (await s.db.query<{ now: Date }>('SELECT now()')) as [{ now: Date }];
    const rows = await outbox(s.db);
    s.receiver.requests.length = 0;
    const replayed = await json(s, 'replay', '--since', from.toISOString(), '--until', to.toISOString());
    assert.equal(replayed.code, 0, replayed.stderr);
    assert.deepEqual(replayed.body, { replayed: 4 });
    await allDelivered(s, 8);
    await s.receiver.waitForCount(4);
    assert.deepEqual(
      s.receiver.requests.map((r) => r.headers['x-event-id']),
      rows.filter((r) => r.order_id === lost).map((r) => r.event_id),
      'only the range, in order, same ids',
    );
    assert.ok(s.receiver.requests.every((r) => r.headers['x-event-attempt'] === '2'));

    s.receiver.requests.length = 0;
    const byOrder = await cli(s, 'replay', '--order', early);
    assert.match(byOrder.stdout, /replay: 4 event\(s\) back to pending \(order /);
    await s.receiver.waitForCount(4);
    assert.deepEqual(
      s.receiver.requests.map((r) => JSON.parse(r.body).eventType),
      ORDER_LIFE,
    );
    await allDelivered(s, 8);
    await s.service!.stop();
    const one = await cli(s, 'replay', '--event', rows[0]!.event_id);
    assert.match(one.stdout, /replay: 1 event\(s\) back to pending/);
    const twice = await json(s, 'replay', '--event', rows[0]!.event_id);
    assert.deepEqual(twice.body, { replayed: 0 }, 'pending already: a no-op');
    const [row] = await s.db.query('SELECT status, attempts FROM order_webhooks.outbox WHERE id = $1', [rows[0]!.id]);
    assert.deepEqual(row, { status: 'pending', attempts: 2 }, 'attempts kept');
    for (const args of [
      ['replay'],
      ['replay', '--failed', '--order', early],
      ['replay', '--since', 'PT1H'],
      ['replay', '--event', 'nope'],
    ]) {
      const bad = await cli(s, ...args);
      assert.equal(bad.code, 2, args.join(' '));
    }
  });

  it('replaying a delivered event keeps its order in order: it goes before the later pending ones, and waits while one is in flight', async () => {
    const s = await stack('ops_replay_order', { startNow: false });
    const orderId = await playOrder(s.db);
    await s.start();
    await allDelivered(s, 4);
    await s.service!.stop();
    const rows = await outbox(s.db);
    // The order's last event is pending again (replayed: its first attempt keeps a row of its own),
    // and an attempt of it is in flight: claimed (attempts counted, lease until a minute from now),
    // no result yet.
    await s.db.query('SELECT order_webhooks.replay_event($1)', [rows[3]!.event_id]);
    await s.db.query(
      "UPDATE order_webhooks.outbox SET attempts = attempts + 1, next_attempt_at = now() + interval '1 minute' WHERE id = $1",
      [rows[3]!.id],
    );
    await s.db.query('SELECT order_webhooks.replay_event($1)', [rows[0]!.event_id]);
    const [waiting] = await s.db.query<{ due_later: boolean }>(
      "SELECT next_attempt_at > now() + interval '50 seconds' AS due_later FROM order_webhooks.outbox WHERE id = $1",
      [rows[0]!.id],
    );
    assert.equal(waiting!.due_later, true, 'waits for the lease of the attempt in flight');
    const events = await s.db.query<{ in_flight: boolean; unrecorded_attempts: number }>(
      'SELECT in_flight, unrecorded_attempts FROM order_webhooks.events WHERE outbox_id = $1',
      [rows[3]!.id],
    );
    assert.deepEqual(events[0], { in_flight: true, unrecorded_attempts: 0 });

    // The same while a later change of the order is on its first attempt straight from the journal.
    await s.db.query("UPDATE order_webhooks.outbox SET status = 'delivered', next_attempt_at = NULL WHERE id = $1", [rows[0]!.id]);
    await s.db.query("UPDATE order_webhooks.outbox SET next_attempt_at = now() - interval '1 second' WHERE id = $1", [rows[3]!.id]);
    await s.db.query(
      "INSERT INTO order_webhooks.change (order_id, op, old_state, new_state, attempts, claimed_until) VALUES ($1, 'UPDATE', 'signed', 'canceled', 1, now() + interval '1 minute')",
      [orderId],
    );
    await s.db.query('SELECT order_webhooks.replay_event($1)', [rows[0]!.event_id]);
    const [behindJournal] = await s.db.query<{ due_later: boolean }>(
      "SELECT next_attempt_at > now() + interval '50 seconds' AS due_later FROM order_webhooks.outbox WHERE id = $1",
      [rows[0]!.id],
    );
    assert.equal(behindJournal!.due_later, true, 'waits for the lease of the journal claim');
    await s.db.query('DELETE FROM order_webhooks.change');

    // The lease ran out with no result: that attempt's instance died. Replayed now, the first event
    // is due at once and goes out before the later pending one.
    await s.db.query("UPDATE order_webhooks.outbox SET next_attempt_at = now() + interval '2 seconds' WHERE id = $1", [rows[3]!.id]);
    await s.db.query("UPDATE order_webhooks.outbox SET status = 'delivered', next_attempt_at = NULL WHERE id = $1", [rows[0]!.id]);
    await s.db.query("UPDATE order_webhooks.outbox SET next_attempt_at = now() - interval '1 second' WHERE id = $1", [rows[3]!.id]);
    const lost = await json(s, 'outbox', 'show', rows[3]!.event_id);
    assert.deepEqual(
      lost.body.attemptRows.map((a: { attempt: number; outcome: string }) => `${a.attempt} ${a.outcome}`),
      ['1 delivered', '2 no result'],
    );
    const lostText = await cli(s, 'outbox', 'show', rows[3]!.event_id);
    assert.match(lostText.stdout, /│ 2\s*│ no result\s*│.*│ made, but its instance stopped or died/);
    await s.db.query("UPDATE order_webhooks.outbox SET next_attempt_at = now() + interval '2 seconds' WHERE id = $1", [rows[3]!.id]);
    assert.equal((await json(s, 'replay', '--event', rows[0]!.event_id)).body.replayed, 1);
    s.receiver.requests.length = 0;
    await s.start();
    await allDelivered(s, 4);
    const sent = s.receiver.requests.filter((r) => JSON.parse(r.body).orderId === orderId).map((r) => r.headers['x-event-id']);
    assert.deepEqual(sent, [rows[0]!.event_id, rows[3]!.event_id], 'the replayed first event before the later pending one');
  });

  it('status: delivered events counted exactly up to 10,000, then estimated and said so; the last failure found behind many deliveries', async () => {
    const s = await stack('ops_history', { startNow: false });
    const addDelivered = (count: number, endpoint: string) =>
      s.db.query(
        `WITH e AS (INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, created_at, delivered_at, endpoint)
                    SELECT i, 'h-' || i, 'OrderCreated', '{}', 'delivered', 1, NULL, now() - interval '1 hour', now() - interval '1 hour', $2
                      FROM generate_series(1, $1::int) i RETURNING id, event_id, created_at)
         INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status)
         SELECT id, event_id, 1, created_at, 3, 200 FROM e`,
        [count, endpoint],
      );
    // One event that failed once, two hours ago, then went through: every delivery above is newer.
    await s.db.query(
      `WITH e AS (INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, created_at, delivered_at)
                  VALUES (0, 'h-failed-once', 'OrderCreated', '{}', 'delivered', 2, NULL, now() - interval '2 hours', now() - interval '2 hours')
                  RETURNING id, event_id, created_at)
       INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status, error, error_kind)
       SELECT id, event_id, 1, created_at, 5, 503, 'HTTP 503', 'http' FROM e
       UNION ALL SELECT id, event_id, 2, created_at + interval '1 minute', 3, 200, NULL, NULL FROM e`,
    );
    await addDelivered(9_000, 'default');
    await addDelivered(900, 'other');
    const exact = await json(s, 'status');
    assert.deepEqual(exact.body.outbox, { pending: 0, delivered: 9_901, failed: 0 });
    assert.equal(exact.body.deliveredEstimated, false);
    assert.equal(exact.body.lastFailure.reason, 'HTTP 503');
    assert.equal(exact.body.lastFailure.orderId, 'h-failed-once');

    await addDelivered(3_000, 'default');
    await s.db.query('ANALYZE order_webhooks.outbox');
    const estimated = await json(s, 'status');
    assert.equal(estimated.body.deliveredEstimated, true);
    const total = estimated.body.outbox.delivered;
    assert.ok(total > 10_000 && Math.abs(total - 12_901) < 1_300, `about 12,901 delivered: ${total}`);
    const other = estimated.body.endpoints.find((e: { endpoint: string }) => e.endpoint === 'other');
    assert.equal(other.deliveredEstimated, true);
    assert.ok(Math.abs(other.delivered - 900) < 200, `about 900 delivered to "other": ${other.delivered}`);
    assert.equal(estimated.body.lastFailure.reason, 'HTTP 503');
    const text = await cli(s, 'status');
    assert.match(text.stdout, /0 pending, about \d+ \(estimated\) delivered, 0 failed/);
  });

  it('purge deletes only the events of that status created before that time, after a count; without --yes and a terminal it refuses', async () => {
    const s = await stack('ops_purge', { startNow: false });
    await playOrder(s.db);
    await playOrder(s.db);
    await s.start();
    await allDelivered(s, 8);
    await s.service!.stop();
    const rows = await outbox(s.db);
    // Two old delivered, one old failed, one old pending; the rest new.
    await s.db.query("UPDATE order_webhooks.outbox SET created_at = now() - interval '40 days' WHERE id = ANY($1)", [
      rows.slice(0, 4).map((r) => r.id),
    ]);
    await s.db.query("UPDATE order_webhooks.outbox SET status = 'failed' WHERE id = $1", [rows[2]!.id]);
    await s.db.query("UPDATE order_webhooks.outbox SET status = 'pending', next_attempt_at = now() + interval '1 day' WHERE id = $1", [
      rows[3]!.id,
    ]);
    const refused = await cli(s, 'purge', '--status', 'delivered', '--before', 'P30D');
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /purge: 2 delivered event\(s\) created before/);
    assert.match(refused.stderr, /refusing without confirmation.*--yes/);
    assert.equal((await outbox(s.db)).length, 8, 'nothing deleted');
    const purged = await json(s, 'purge', '--status', 'delivered', '--before', 'P30D', '--yes');
    assert.equal(purged.code, 0, purged.stderr);
    assert.equal(purged.body.deleted, 2);
    const left = await outbox(s.db);
    assert.deepEqual(
      left.map((r) => r.id),
      rows.slice(2).map((r) => r.id),
    );
    const attempts = await s.db.query('SELECT 1 FROM order_webhooks.outbox_attempt WHERE outbox_id = ANY($1)', [
      rows.slice(0, 2).map((r) => r.id),
    ]);
    assert.equal(attempts.length, 0, 'their attempts went with them');
    const failed = await cli(s, 'purge', '--status', 'failed', '--before', new Date().toISOString(), '-y');
    assert.match(failed.stdout, /^purge: deleted 1 failed event\(s\)/m);
    assert.deepEqual(
      (await outbox(s.db)).map((r) => r.id),
      rows.slice(3).map((r) => r.id),
      'pending never purged, new delivered kept',
    );
    assert.equal((await cli(s, 'purge', '--status', 'pending', '--before', 'P1D', '--yes')).code, 2);
  });

  it('uninstall leaves the orders table exactly as before migrate; --drop-schema drops our schema after saying what goes', async () => {
    const db = await createTestDatabase('ops_uninstall');
    try {
      await createOrdersTable(db);
      const dump = () =>
        execFileSync('pg_dump', ['--schema-only', '--table=public.orders', '--no-owner', db.url], { encoding: 'utf8' }).replace(
          /^\\(un)?restrict .*$/gm,
          '',
        );
      const before = dump();
      const configPath = writeConfig({ database: { url: db.url } });
      assert.equal((await run(['migrate', '--config', configPath])).code, 0);
      assert.notEqual(dump(), before, 'the trigger is on the table');
      const refused = await run(['uninstall', '--config', configPath]);
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /this drops\n {2}- the capture triggers on "public"\."orders"/);
      const done = await run(['uninstall', '--config', configPath, '--yes']);
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stdout, /^uninstall: capture trigger dropped from "public"\."orders"$/m);
      assert.equal(dump(), before, 'the orders table as it was');
      const status = await run(['status', '--config', configPath, '--json']);
      assert.equal(status.code, 1);
      assert.equal(JSON.parse(status.stdout).trigger.condition, 'missing');

      assert.equal((await run(['migrate', '--config', configPath])).code, 0);
      await db.query("INSERT INTO orders (state) VALUES ('created')");
      const dropped = await run(['uninstall', '--drop-schema', '--config', configPath, '--json', '--yes']);
      assert.equal(dropped.code, 0, dropped.stderr);
      assert.match(dropped.stderr, /schema "order_webhooks" and all its data: 1 change\(s\) not yet mapped, 0 pending/);
      assert.deepEqual(JSON.parse(dropped.stdout), { table: '"public"."orders"', droppedTrigger: true, droppedSchema: true });
      assert.equal(dump(), before);
      assert.deepEqual(await db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'order_webhooks'"), []);
      const gone = await run(['status', '--config', configPath, '--json']);
      assert.equal(gone.code, 1);
      assert.equal(JSON.parse(gone.stdout).schema.version, null);
      assert.match(JSON.parse(gone.stdout).attention.join('\n'), /schema "order_webhooks" is not installed: run `order-webhooks migrate`/);
      const list = await run(['outbox', 'list', '--config', configPath]);
      assert.equal(list.code, 2);
      assert.match(list.stderr, /run `order-webhooks migrate`/);
    } finally {
      await db.drop();
    }
  });

  it('on a terminal: colour unless NO_COLOR is set, and a progress bar on stderr for a large replay', async () => {
    const s = await stack('ops_tty', { startNow: false });
    await s.db.query(
      `INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, last_error, last_error_kind)
       SELECT g, 'o' || (g % 100), 'OrderCreated', '{}', 'failed', 3, NULL, 'http: 500 Internal Server Error', 'http_status'
         FROM generate_series(1, 2500) g`,
    );
    // `script` runs the command on a pseudo-terminal and prints what the terminal showed.
    const onTerminal = (args: string, env: Record<string, string> = {}) => {
      const result = spawnSync('script', ['-qec', `${process.execPath} ${BIN} ${args} --config ${s.configPath}`, '/dev/null'], {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: 'xterm', ...env },
        encoding: 'utf8',
        timeout: 60_000,
      });
      return { code: result.status, screen: result.stdout };
    };
    const colour = onTerminal('status');
    assert.equal(colour.code, 1, colour.screen);
    assert.ok(colour.screen.includes('\x1b[31mneeds attention:'), `red on a terminal: ${JSON.stringify(colour.screen)}`);
    const plain = onTerminal('status', { NO_COLOR: '1' });
    assert.equal(plain.code, 1);
    assert.match(plain.screen, /needs attention: 2500 failed event/);
    assert.ok(!plain.screen.includes('\x1b['), 'no escape codes with NO_COLOR');
    const replay = onTerminal('replay --failed');
    assert.equal(replay.code, 0, replay.screen);
    assert.match(replay.screen, /replay \[.*\] 100% \| 2500\/2500 outbox ids \| 2500 replayed/);
    assert.match(replay.screen, /replay: 2500 event\(s\) back to pending \(failed events\)/);
    const piped = await cli(s, 'replay', '--failed');
    assert.equal(piped.stderr, '', 'no bar when stderr is not a terminal');
  });

  describe('check', () => {
    let pki: Pki;
    let selfSigned: HttpsReceiver;
    let mutual: HttpsReceiver; // asks for a client certificate from the test CA
    before(async () => {
      pki = makePki();
      selfSigned = await startHttpsReceiver({ key: pki.read('self-signed.key'), cert: pki.read('self-signed.pem') });
      mutual = await startHttpsReceiver({ key: pki.read('server.key'), cert: pki.read('server.pem'), clientCa: pki.read('ca.pem') });
    });
    after(async () => {
      await selfSigned?.close();
      await mutual?.close();
      rmSync(pki.dir, { recursive: true, force: true });
    });

    it('every item ok, and --send posts one signed test request', async () => {
      const s = await stack('ops_check', { webHook: secretHook, startNow: false });
      const ok = await cli(s, 'check');
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      for (const item of ['config', 'database', 'migrations', 'trigger', 'tls', 'endpoint']) {
        assert.match(ok.stdout, new RegExp(`^ok\\s+${item}\\s`, 'm'), item);
      }
      assert.match(ok.stdout, /endpoint\s+http:\/\/127\.0\.0\.1:\d+\/automation\/\?key=REDACTED reachable \(HEAD answered 200\)/);
      assert.ok(
        s.receiver.requests.every((r) => r.body === '' && r.headers['x-event-id'] === undefined),
        'a HEAD posts no event',
      );
      const heads = s.receiver.requests.length;
      const sent = await json(s, 'check', '--send');
      assert.equal(sent.code, 0);
      assert.equal(sent.body.ok, true);
      assert.match(sent.body.items.find((i: { item: string }) => i.item === 'send').detail, /answered 200 in \d+ ms \(signed\)/);
      const request = (await s.receiver.waitForCount(heads + 2)).at(-1);
      assert.equal(request!.body, '{"orderId":"order-webhooks-check","eventType":"OrderCreated"}');
      assert.equal(request!.headers['x-order-webhooks-check'], '1');
      assert.ok(request!.headers['x-signature']);
      assert.match(request!.url, /key=OpsUrlKey/);
    });

    it('reports an unreachable endpoint, a certificate it does not trust, a missing TLS file and a bad config', async () => {
      const s = await stack('ops_check_bad', { webHook: secretHook, startNow: false });
      const down = await startReceiver();
      await down.close();
      const unreachable = writeConfig({ ...s.config, webHook: { ...s.config.webHook, endpoint: down.url } });
      const refused = await run(['check', '--config', unreachable]);
      assert.equal(refused.code, 1);
      assert.match(refused.stdout, /^ok\s+database\s/m);
      assert.match(
        refused.stdout,
        /^failed\s+endpoint\s+http:\/\/127\.0\.0\.1:\d+\/automation\/\?key=REDACTED: connect: connection refused/m,
      );
      assertNoSecret(refused.stdout, refused.stderr);

      const untrusted = writeConfig({ ...s.config, webHook: { ...s.config.webHook, endpoint: selfSigned.url, useSslTrustAll: false } });
      const tls = await run(['check', '--config', untrusted, '--json']);
      assert.equal(tls.code, 1);
      const endpoint = JSON.parse(tls.stdout).items.find((i: { item: string }) => i.item === 'endpoint');
      assert.equal(endpoint.ok, false);
      assert.match(endpoint.detail, /tls: (self-signed certificate|certificate signed by unknown authority)/);

      const missing = writeConfig({
        ...s.config,
        webHook: { ...s.config.webHook, endpoint: selfSigned.url, useSslTrustAll: false, sslTrustFile: '/nonexistent/ca.pem' },
      });
      const file = await run(['check', '--config', missing]);
      assert.equal(file.code, 1);
      assert.match(file.stdout, /^failed\s+tls\s+webHook\.sslTrustFile: .*\/nonexistent\/ca\.pem/m);

      // A receiver that asks for a client certificate: refused without one, accepted with it.
      const trusted = { endpoint: mutual.url, useSslTrustAll: false, sslKeyPassword: PASSWORD };
      const noClientCert = writeConfig({ ...s.config, webHook: { ...s.config.webHook, ...trusted, sslKeyFile: pki.path('ca.pem') } });
      const withoutCert = await run(['check', '--config', noClientCert]);
      assert.equal(withoutCert.code, 1);
      assert.match(withoutCert.stdout, /^ok\s+tls\s+files loaded/m);
      assert.match(
        withoutCert.stdout,
        /^failed\s+endpoint\s+https:\/\/127\.0\.0\.1:\d+\/automation\/\?key=REDACTED: (tls|reset|connection closed)/m,
      );
      const clientCert = writeConfig({
        ...s.config,
        webHook: {
          ...s.config.webHook,
          ...trusted,
          useSslClientCert: true,
          sslKeyFile: pki.path('client.p12'),
          sslTrustFile: pki.path('ca.pem'),
        },
      });
      const withCert = await run(['check', '--config', clientCert, '--send']);
      assert.equal(withCert.code, 0, withCert.stdout);
      assert.match(withCert.stdout, /^ok\s+send\s+test request answered 200/m);
      assert.ok(mutual.clients.length >= 2 && mutual.clients.every((cn) => cn !== null), 'the client certificate was presented');
      assertNoSecret(withoutCert.stdout, withCert.stdout);
      assert.ok(!withCert.stdout.includes(PASSWORD) && !withoutCert.stdout.includes(PASSWORD));

      // A database that cannot be reached: one line, and never its password.
      const password = 'DbPassw0rd-ops-5t';
      const down2 = writeConfig({ ...s.config, database: { url: `postgres://postgres:${password}@127.0.0.1:1/nowhere` } });
      const noDb = await run(['check', '--config', down2]);
      assert.equal(noDb.code, 1);
      assert.match(noDb.stdout, /^failed\s+database\s+cannot connect to the database: .*ECONNREFUSED/m);
      const noDbStatus = await run(['status', '--config', down2]);
      assert.equal(noDbStatus.code, 1);
      assert.match(noDbStatus.stderr, /^order-webhooks: status: cannot connect to the database: /);
      assert.equal(noDbStatus.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
      for (const output of [noDb.stdout, noDb.stderr, noDbStatus.stdout, noDbStatus.stderr]) assert.ok(!output.includes(password));

      const badConfig = await run(['check', '--config', writeConfig({ webHook: { enabled: 'yes' }, database: { url: s.db.url } })]);
      assert.equal(badConfig.code, 2);
      assert.match(badConfig.stdout, /^failed\s+config\s+config error: webHook\.enabled: expected boolean/m);
    });
  });
});
