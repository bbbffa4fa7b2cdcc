// The health model, pure: each observed fact becomes its problem (code, level, one line), and each
// surface sees the problems of its scope. No database: the facts are written here.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CaptureProblem } from '../src/capture/state.ts';
import { ClaimStreaks } from '../src/delivery/claimFailures.ts';
import { CaptureError, PoolerError, SchemaError } from '../src/errors.ts';
import {
  assess,
  CLAIMS_FAILING_FOR_MS,
  CLAIMS_FAILING_IN_A_ROW,
  type Facts,
  inScope,
  kindOf,
  type Problem,
  readiness,
  SCOPES,
  startRefusal,
} from '../src/health/model.ts';

const SCHEMA = { name: 'order_webhooks', version: 8, latest: 8 };
/** What a healthy installation looks like to `start` and `check`. */
const HEALTHY: Facts = {
  pooler: null,
  privileges: { role: 'svc', schema: 'order_webhooks', missing: [] },
  schema: SCHEMA,
  damage: { schema: 'order_webhooks', lines: [] },
  ordersTable: null,
  captureRow: { table: '"public"."orders"', state: 'current' },
  triggers: [],
  wakeUpWarning: null,
  enabled: true,
  database: null,
  listening: true,
  claims: { inARow: 0, since: null, error: null },
  failed: 0,
  lag: { seconds: 3, maxSeconds: 300, limit: '--max-lag PT5M' },
  now: 1_700_000_000_000,
};
const NOW = HEALTHY.now!;

const codes = (problems: Problem[]) => problems.map((p) => p.code);
/** The problems of the healthy facts with `change` applied. */
const healthyBut = (change: Facts) => assess({ ...HEALTHY, ...change });

const trigger = (code: CaptureProblem['code'], level: CaptureProblem['level'], message: string): CaptureProblem => ({
  code,
  level,
  message,
});

describe('health model', () => {
  it('healthy facts: no problem; facts not observed: no problem', () => {
    assert.deepEqual(assess(HEALTHY), []);
    assert.deepEqual(assess({}), []);
  });

  it('each fact becomes its problem, with a stable code, a level and one line', () => {
    const cases: [Facts, Problem][] = [
      [
        { pooler: 'database.url: the connections are shared with other clients between transactions' },
        {
          code: 'pooler_unsupported',
          level: 'error',
          line: 'database.url: the connections are shared with other clients between transactions',
        },
      ],
      [
        { privileges: { role: 'svc', schema: 'order_webhooks', missing: ['DELETE on order_webhooks.change'] } },
        {
          code: 'privileges_missing',
          level: 'error',
          line: 'the role "svc" lacks DELETE on order_webhooks.change: have the owner of schema "order_webhooks" run what `order-webhooks migrate --print-grants svc` prints',
        },
      ],
      [
        { schema: { ...SCHEMA, version: null } },
        {
          code: 'schema_not_installed',
          level: 'error',
          line: 'schema "order_webhooks" is not installed: run `order-webhooks migrate` first',
        },
      ],
      [
        { schema: { ...SCHEMA, version: 7 } },
        {
          code: 'schema_outdated',
          level: 'error',
          line: 'schema "order_webhooks" is at version 7, this release needs 8: run `order-webhooks migrate`',
        },
      ],
      [
        { schema: { ...SCHEMA, version: 9 } },
        {
          code: 'schema_newer',
          level: 'error',
          line: 'schema "order_webhooks" is at version 9, newer than this release knows (8): run the release that migrated it',
        },
      ],
      [
        { damage: { schema: 'order_webhooks', lines: ['table "order_webhooks"."capture" is missing', 'x'] } },
        {
          code: 'schema_damaged',
          level: 'error',
          line: 'schema "order_webhooks" is damaged: table "order_webhooks"."capture" is missing; x (docs/security.md, "If our schema is damaged")',
        },
      ],
      [
        { ordersTable: 'orders.table: table "public"."orders" does not exist (check orders.schema and orders.table)' },
        {
          code: 'orders_table_invalid',
          level: 'error',
          line: 'orders.table: table "public"."orders" does not exist (check orders.schema and orders.table)',
        },
      ],
      [
        { captureRow: { table: '"public"."orders"', state: 'missing' } },
        {
          code: 'capture_not_installed',
          level: 'error',
          line: 'the capture trigger is not installed on "public"."orders": run `order-webhooks migrate` first',
        },
      ],
      [
        { captureRow: { table: '"public"."old"', state: 'other' } },
        {
          code: 'capture_other_config',
          level: 'error',
          line: 'the capture trigger on "public"."old" was installed for another config or release: run `order-webhooks migrate` to update it',
        },
      ],
      [
        { triggers: [trigger('trigger_disabled', 'error', 'capture trigger disabled on "public"."orders_2026"')] },
        { code: 'trigger_disabled', level: 'error', line: 'capture trigger disabled on "public"."orders_2026"' },
      ],
      [
        { triggers: [trigger('trigger_always', 'warn', 'capture trigger fires in replica sessions too')] },
        { code: 'trigger_always', level: 'warn', line: 'capture trigger fires in replica sessions too' },
      ],
      [
        { wakeUpWarning: 'database.wakeUp is "notify" but max_prepared_transactions = 10' },
        { code: 'wake_up_unsafe', level: 'warn', line: 'database.wakeUp is "notify" but max_prepared_transactions = 10' },
      ],
      [
        { enabled: false },
        {
          code: 'webhooks_disabled',
          level: 'warn',
          line: 'webhooks are disabled (webHook.enabled is false): nothing is sent, changes wait in the journal',
        },
      ],
      [
        { database: 'Connection terminated unexpectedly' },
        { code: 'database_unreachable', level: 'error', line: 'database unreachable: Connection terminated unexpectedly' },
      ],
      [
        { listening: false },
        { code: 'listener_down', level: 'error', line: 'listener not subscribed: the LISTEN connection is down, reconnecting' },
      ],
      [
        { claims: { inARow: 4, since: NOW - 12_000, error: 'permission denied for table change (42501)' } },
        {
          code: 'claims_failing',
          level: 'error',
          line: `claims failing: 4 in a row since ${new Date(NOW - 12_000).toISOString()}: permission denied for table change (42501)`,
        },
      ],
      [
        { failed: 2 },
        { code: 'events_failed', level: 'error', line: '2 failed event(s): see `order-webhooks outbox list --status failed`' },
      ],
      [
        { lag: { seconds: 3600, maxSeconds: 300, limit: '--max-lag PT5M' } },
        { code: 'lag_over_max', level: 'error', line: 'lag 1h 0m is over --max-lag PT5M' },
      ],
    ];
    for (const [change, problem] of cases) assert.deepEqual(healthyBut(change), [problem], JSON.stringify(change));
  });

  it('claims fail "for a while" only with enough in a row and for long enough', () => {
    const failing = (inARow: number, forMs: number) => codes(healthyBut({ claims: { inARow, since: NOW - forMs, error: 'e' } }));
    assert.deepEqual(failing(CLAIMS_FAILING_IN_A_ROW, CLAIMS_FAILING_FOR_MS), ['claims_failing']);
    assert.deepEqual(failing(CLAIMS_FAILING_IN_A_ROW - 1, 60_000), [], 'two failures a minute apart: not yet');
    assert.deepEqual(failing(10, CLAIMS_FAILING_FOR_MS - 1), [], 'a burst within ten seconds: not yet');
  });

  it('webhooks disabled: nothing listens or claims by choice, so neither is a problem', () => {
    const idle = healthyBut({ enabled: false, listening: false, claims: { inARow: 9, since: NOW - 60_000, error: 'e' } });
    assert.deepEqual(codes(idle), ['webhooks_disabled']);
  });

  it('says a thing once: damage of an older schema, and a missing orders table, are left to their own problem', () => {
    // An older schema lacks what later migrations add: that is "outdated", not damage.
    assert.deepEqual(codes(healthyBut({ schema: { ...SCHEMA, version: 6 }, damage: { schema: 'order_webhooks', lines: ['x'] } })), [
      'schema_outdated',
    ]);
    // Damage is still said when the version could not be read (a role without privileges).
    assert.deepEqual(codes(healthyBut({ schema: undefined, damage: { schema: 'order_webhooks', lines: ['x'] } })), ['schema_damaged']);
    const gone = { code: 'orders_table_missing', level: 'error', message: 'orders table "public"."orders" does not exist' } as const;
    assert.deepEqual(codes(healthyBut({ ordersTable: 'orders.table: table "public"."orders" does not exist', triggers: [gone] })), [
      'orders_table_invalid',
    ]);
    assert.deepEqual(codes(healthyBut({ triggers: [gone] })), ['orders_table_missing']);
  });

  it('problems come in the order start checks: pooler, privileges, schema version, damage, orders table, capture row', () => {
    const all = healthyBut({
      captureRow: { table: 't', state: 'other' },
      ordersTable: 'bad table',
      damage: { schema: 'order_webhooks', lines: ['x'] },
      privileges: { role: 'svc', schema: 'order_webhooks', missing: ['USAGE on schema order_webhooks'] },
      pooler: 'shared',
      failed: 1,
      listening: false,
      triggers: [trigger('trigger_missing', 'error', 'missing')],
    });
    assert.deepEqual(codes(all), [
      'pooler_unsupported',
      'privileges_missing',
      'schema_damaged',
      'orders_table_invalid',
      'capture_other_config',
      'trigger_missing',
      'listener_down',
      'events_failed',
    ]);
  });

  it('scopes: start refuses on set-up only; check adds capture; status everything; /readyz runtime only; the page all but the backlog', () => {
    const all = healthyBut({
      pooler: 'shared',
      triggers: [trigger('trigger_disabled', 'error', 'disabled')],
      wakeUpWarning: 'unsafe',
      listening: false,
      failed: 3,
    });
    assert.deepEqual(codes(inScope('start', all)), ['pooler_unsupported']);
    assert.deepEqual(codes(inScope('check', all)), ['pooler_unsupported', 'trigger_disabled', 'wake_up_unsafe']);
    assert.deepEqual(codes(inScope('status', all)), codes(all));
    assert.deepEqual(codes(inScope('ready', all)), ['listener_down']);
    assert.deepEqual(codes(inScope('page', all)), ['pooler_unsupported', 'trigger_disabled', 'wake_up_unsafe', 'listener_down']);
    // Check's scope is start's and more: whatever start refuses on, check fails on.
    for (const kind of SCOPES.start) assert.ok((SCOPES.check as readonly string[]).includes(kind));
    assert.equal(kindOf('claims_failing'), 'runtime');
  });

  it('start refuses with the first set-up problem, as the error of its kind (exit 2); runtime and backlog never stop a start', () => {
    const refusal = (change: Facts) => startRefusal(healthyBut(change));
    assert.equal(refusal({ listening: false, failed: 4, wakeUpWarning: 'w' }), undefined);
    const pooler = refusal({ pooler: 'shared', schema: { ...SCHEMA, version: 2 } });
    assert.ok(pooler instanceof PoolerError);
    assert.equal(pooler.message, 'shared');
    const schema = refusal({ schema: { ...SCHEMA, version: 2 }, ordersTable: 'bad' });
    assert.ok(schema instanceof SchemaError);
    assert.equal(schema.code, 'SCHEMA_NOT_CURRENT');
    const privileges = refusal({ privileges: { role: 'svc', schema: 's', missing: ['USAGE on schema s'] } });
    assert.ok(privileges instanceof CaptureError);
    assert.match(privileges.message, /^the role "svc" lacks USAGE on schema s/);
  });

  it('/readyz: 503 with the first runtime error, else 200 saying why', () => {
    assert.deepEqual(readiness(healthyBut({}), 'fine'), { ready: true, reason: 'fine' });
    assert.deepEqual(readiness(healthyBut({ enabled: false }), 'fine'), {
      ready: true,
      reason: 'webhooks are disabled (webHook.enabled is false): nothing is sent, changes wait in the journal',
    });
    assert.deepEqual(
      readiness(healthyBut({ pooler: 'shared', failed: 9 }), 'fine'),
      { ready: true, reason: 'fine' },
      'not a runtime problem',
    );
    const down = readiness(healthyBut({ claims: { inARow: 5, since: NOW - 30_000, error: 'e' }, database: 'gone' }), 'fine');
    assert.deepEqual(down, { ready: false, reason: 'database unreachable: gone' });
  });

  it("the dispatcher's claim streaks: per kind, reset by a claim of that kind that works, the oldest one shown", () => {
    const streaks = new ClaimStreaks();
    assert.deepEqual(streaks.current, { inARow: 0, since: null, error: null });
    streaks.failed('new', 'denied', 1000);
    streaks.failed('new', 'denied again', 2000);
    streaks.failed('due', 'locked', 1500);
    assert.deepEqual(streaks.current, { inARow: 2, since: 1000, error: 'denied again' });
    streaks.succeeded('due');
    assert.deepEqual(streaks.current, { inARow: 2, since: 1000, error: 'denied again' }, 'a due claim that works says nothing of new ones');
    streaks.succeeded('new');
    assert.deepEqual(streaks.current, { inARow: 0, since: null, error: null });
  });
});
