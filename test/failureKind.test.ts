import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { run } from './helpers/cli.ts';
import { insertOrder } from './helpers/db.ts';
import { waitFor } from './helpers/poll.ts';
import { stacksClosedAfter } from './helpers/stack.ts';

describe('failure kinds', () => {
  const stack = stacksClosedAfter();

  it('every failed attempt is recorded with its kind beside its reason, on the attempt and on the event', async () => {
    const s = await stack('kinds', { webHook: { requestTimeout: 'PT1S', leaseTimeout: 'PT2S', retry: { delays: ['PT0.2S'] } } });
    const answers = new Map<string, (res: import('node:http').ServerResponse) => void>();
    s.receiver.respond = (request, res) => {
      const { orderId } = JSON.parse(request.body);
      const answer = answers.get(orderId);
      if (answer) answer(res);
      else res.end('ok');
    };
    const expected = new Map<string, string>();
    const answer = async (kind: string, respond: (res: import('node:http').ServerResponse) => void) => {
      // The order's id is known only once inserted: hold the insert's event until the answer is set.
      const id = await s.db.query<{ id: string }>('SELECT gen_random_uuid()::text AS id').then((r) => r[0]!.id);
      answers.set(id, respond);
      expected.set(id, kind);
      await s.db.query("INSERT INTO orders (id, state) VALUES ($1, 'created')", [id]);
    };
    await answer('http_status', (res) => {
      res.statusCode = 503;
      res.end('busy');
    });
    await answer('redirect', (res) => {
      res.statusCode = 302;
      res.setHeader('location', 'http://127.0.0.1:1/elsewhere');
      res.end();
    });
    await answer('reset', (res) => res.socket?.destroy());
    await answer('timeout', () => undefined);
    const delivered = await insertOrder(s.db);

    const rows = await waitFor(
      async () => {
        const r = await s.db.query<{ order_id: string; status: string; last_error: string | null; last_error_kind: string | null }>(
          'SELECT order_id, status, last_error, last_error_kind FROM order_webhooks.outbox',
        );
        return r.length === 5 && r.every((row) => row.status !== 'pending') ? r : undefined;
      },
      { what: 'every event delivered or failed', timeoutMs: 20_000 },
    );
    for (const row of rows) {
      if (row.order_id === delivered) {
        assert.deepEqual([row.status, row.last_error, row.last_error_kind], ['delivered', null, null]);
        continue;
      }
      assert.equal(row.status, 'failed', row.order_id);
      assert.equal(row.last_error_kind, expected.get(row.order_id), row.last_error ?? '');
    }
    const attempts = await s.db.query<{ order_id: string; error_kind: string | null; error: string | null }>(
      'SELECT order_id, error_kind, error FROM order_webhooks.attempts',
    );
    assert.equal(attempts.length, 4 * 2 + 1, 'two attempts per failed event, one for the delivered one');
    for (const a of attempts) {
      assert.equal(a.error_kind, expected.get(a.order_id) ?? null, a.error ?? '');
      assert.equal(a.error === null, a.error_kind === null);
    }
  });

  it('upgrading from version 3 gives the failures already recorded the kind their reason implies', async () => {
    const s = await stack('kinds_upgrade', { startNow: false });
    // Back to version 3 with failures recorded by then (first undoing the operations migration,
    // whose views read the columns version 4 added).
    await s.db.query(`DROP VIEW order_webhooks.events, order_webhooks.attempts, order_webhooks.pending,
        order_webhooks.failures, order_webhooks.summary;
      DROP FUNCTION order_webhooks.replay_event, order_webhooks.replay_failed, order_webhooks.replay_order,
        order_webhooks.replay_range, order_webhooks.replay_outbox, order_webhooks.attempt_in_flight;
      ALTER TABLE order_webhooks.outbox DROP COLUMN replayed_at;
      ALTER TABLE order_webhooks.outbox DROP COLUMN last_error_kind;
      ALTER TABLE order_webhooks.outbox_attempt DROP COLUMN error_kind;
      DELETE FROM order_webhooks.migration WHERE version >= 4`);
    const reasons: [string | null, string | null][] = [
      ['http: 503 Service Unavailable', 'http_status'],
      ['http: 301 Moved Permanently: redirects are not followed; point webHook.endpoint at the final URL', 'redirect'],
      ['timeout: no complete response within webHook.requestTimeout (30000 ms)', 'timeout'],
      ['dns: host not found (ENOTFOUND)', 'dns'],
      ['connect: connection refused (ECONNREFUSED)', 'connect'],
      ['tls: certificate has expired (CERT_HAS_EXPIRED)', 'tls'],
      ['connection closed by the receiver before it answered (ECONNRESET)', 'reset'],
      ['internal: something of ours', 'internal'],
      [null, null],
    ];
    for (const [n, [reason]] of reasons.entries()) {
      const [row] = await s.db.query<{ id: string }>(
        `INSERT INTO order_webhooks.outbox (event_id, change_id, order_id, event_type, body, status, attempts, next_attempt_at, last_error)
         VALUES (gen_random_uuid(), $1, 'o', 'OrderCreated', '{}', 'failed', 1, NULL, $2) RETURNING id`,
        [n + 1, reason],
      );
      await s.db.query(
        `INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, error)
         SELECT id, event_id, 1, now(), 1, last_error FROM order_webhooks.outbox WHERE id = $1`,
        [row!.id],
      );
    }
    const migrated = await run(['migrate', '--config', s.configPath]);
    assert.equal(migrated.code, 0, migrated.stderr);
    assert.match(migrated.stdout, /applied 4_failure_kind/);
    const outbox = await s.db.query<{ last_error: string | null; last_error_kind: string | null }>(
      'SELECT last_error, last_error_kind FROM order_webhooks.outbox ORDER BY id',
    );
    assert.deepEqual(
      outbox.map((r) => [r.last_error, r.last_error_kind]),
      reasons,
    );
    const attempts = await s.db.query<{ error: string | null; error_kind: string | null }>(
      'SELECT error, error_kind FROM order_webhooks.outbox_attempt ORDER BY id',
    );
    assert.deepEqual(
      attempts.map((r) => [r.error, r.error_kind]),
      reasons,
    );
  });
});
