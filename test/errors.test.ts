// Every error that reaches the command line has a stable code, and one function maps the code to
// the exit code (docs/how-it-works.md, "Errors and exit codes"): set-up faults exit 2, failures 1.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { exitCodeFor } from '../src/cli/exit.ts';
import { parseConfig } from '../src/config/config.ts';
import { Sender } from '../src/delivery/sender.ts';
import * as errors from '../src/errors.ts';
import { run, writeConfig } from './helpers/cli.ts';
import { serverUrl } from './helpers/db.ts';
import { stacksClosedAfter } from './helpers/stack.ts';

/** Each code and its exit code, as docs/how-it-works.md lists them. */
const EXIT_CODES: Record<errors.ErrorCode, number> = {
  CONFIG_INVALID: 2,
  TLS_CONFIG_INVALID: 2,
  CAPTURE_INVALID: 2,
  POOLER_UNSUPPORTED: 2,
  SCHEMA_NOT_CURRENT: 2,
  DATABASE_REFUSED: 2,
  EMBEDDED_POSTGRES_MISSING: 2,
  MIGRATION_FAILED: 1,
  DATABASE_UNREACHABLE: 1,
  DATABASE_FAILED: 1,
  ORDERS_TABLE_BUSY: 1,
  UNINSTALL_FAILED: 1,
  EMBEDDED_POSTGRES: 1,
  DEMO_FAILED: 1,
  DEMO_INTERRUPTED: 130,
};

describe('errors and exit codes', () => {
  const stack = stacksClosedAfter();

  it('every error class has its own code, and each code its exit code', () => {
    type ErrorClass = new (message: string) => errors.AppError;
    const classes = (Object.values(errors) as unknown[]).filter(
      (value): value is ErrorClass => typeof value === 'function' && value.prototype instanceof errors.AppError,
    );
    const codes = classes.map((Class) => new Class('x').code);
    assert.equal(new Set(codes).size, codes.length, 'no code shared by two classes');
    assert.deepEqual([...codes].sort(), Object.keys(EXIT_CODES).sort());
    for (const Class of classes) {
      const error = new Class('x');
      assert.equal(exitCodeFor(error), EXIT_CODES[error.code], error.code);
    }
  });

  it('a sender without an endpoint is a config error, not a bare one', () => {
    const config = parseConfig({ database: { url: 'postgres://svc@127.0.0.1:1/none' } }, {});
    assert.throws(() => new Sender(config.webHook), errors.ConfigError);
  });

  it('a database that refuses the login: one line, exit 2 (DATABASE_REFUSED)', async () => {
    const config = writeConfig({ database: { url: serverUrl('ow_test_refused_no_such_db') } });
    const status = await run(['status', '--config', config]);
    assert.equal(status.code, 2, status.stderr);
    assert.equal(
      status.stderr,
      'order-webhooks: status: the database refused the connection: database "ow_test_refused_no_such_db" does not exist (3D000); check database.url\n',
    );
  });

  it('an emptied installation table stops start as a damaged schema: one line, exit 2 (CAPTURE_INVALID)', async () => {
    const s = await stack('errors_installation', { startNow: false });
    await s.db.query('DELETE FROM order_webhooks.installation');
    const result = await run(['start', '--config', s.configPath]);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      'order-webhooks: start: schema "order_webhooks" is damaged: table "order_webhooks"."installation" is empty (docs/security.md, "If our schema is damaged")\n',
    );
  });

  it('uninstall while the order app keeps the orders table locked gives up: one line, exit 1 (ORDERS_TABLE_BUSY)', async () => {
    const s = await stack('errors_busy', { startNow: false });
    // An order transaction that stays open: its row lock on the table holds off DROP TRIGGER.
    const app = new pg.Client({ connectionString: s.db.url });
    await app.connect();
    try {
      await app.query("BEGIN; INSERT INTO orders (state) VALUES ('created')");
      const result = await run(['uninstall', '--config', s.configPath, '--yes'], {}, 60_000);
      assert.equal(result.code, 1, result.stderr);
      assert.match(
        result.stderr.split('\n').at(-2)!,
        /^order-webhooks: uninstall: dropping the capture trigger: gave up after 5 tries: "public"\."orders" stayed locked by other transactions for more than 2s each time; run it again when the order app is quieter$/,
      );
      await app.query('ROLLBACK');
      // Nothing was dropped: the trigger still captures.
      const [row] = await s.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_trigger WHERE tgrelid = 'public.orders'::regclass AND tgname LIKE 'order_webhooks_capture_%'",
      );
      assert.equal(row!.n, 5);
    } finally {
      await app.end();
    }
  });
});
