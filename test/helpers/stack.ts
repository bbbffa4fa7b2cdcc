// A whole set-up for end-to-end tests: a database with an orders table, our schema migrated,
// a receiver, and optionally the service running.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after } from 'node:test';
import { type RunResult, run, type ServiceProcess, startService, writeConfig } from './cli.ts';
import { createOrdersTable, createTestDatabase, type TestDatabase } from './db.ts';
import { type Receiver, startReceiver } from './receiver.ts';

export interface Stack {
  db: TestDatabase;
  receiver: Receiver;
  configPath: string;
  config: Record<string, any>;
  /** What `migrate` printed. */
  migrated: RunResult;
  service?: ServiceProcess;
  /** Starts the service, with these environment variables beside PATH and HOME. */
  start(env?: NodeJS.ProcessEnv): Promise<ServiceProcess>;
  close(): Promise<void>;
}

export async function createStack(
  label: string,
  {
    webHook = {},
    orders = {},
    database = {},
    startNow = true,
    server,
    serviceUrl,
    sections = {},
  }: {
    webHook?: object;
    orders?: object;
    database?: object;
    startNow?: boolean;
    /** Another server than the run's (its URL). */
    server?: string;
    /** The URL the service connects with (through a proxy, say); migrate uses the database's own. */
    serviceUrl?: (url: string) => string;
    /** More top-level config sections (`telemetry`, say). */
    sections?: Record<string, unknown>;
  } = {},
): Promise<Stack> {
  const db = await createTestDatabase(label, server);
  await createOrdersTable(db);
  const receiver = await startReceiver();
  const config = {
    webHook: { enabled: true, endpoint: receiver.url, retry: { delays: ['PT0.5S', 'PT0.5S'] }, ...webHook },
    database: { url: db.url, pollInterval: 'PT0.5S', ...database },
    orders: { dueDateColumn: 'due_date', ...orders },
    logLevel: 'info',
    ...sections,
  };
  const configPath = writeConfig(config);
  const migrated = await run(['migrate', '--config', configPath]);
  assert.equal(migrated.code, 0, migrated.stderr);
  if (serviceUrl) writeFileSync(configPath, JSON.stringify({ ...config, database: { ...config.database, url: serviceUrl(db.url) } }));
  const stack: Stack = {
    db,
    receiver,
    configPath,
    config,
    migrated,
    async start(env) {
      stack.service = await startService(configPath, env);
      return stack.service;
    },
    async close() {
      await stack.service?.kill();
      await stack.receiver.close(); // a test may have replaced it
      await db.drop();
    },
  };
  if (startNow) await stack.start();
  return stack;
}

export interface OutboxRow {
  id: string;
  event_id: string;
  order_id: string;
  event_type: string;
  body: string;
  status: string;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  response_ms: number | null;
  delivered_at: Date | null;
  next_attempt_at: Date | null;
}

/** The outbox's rows, `body` as sent (the column holds it only when event_body() does not make it, migration 11). */
export function outbox(db: TestDatabase, schema = 'order_webhooks'): Promise<OutboxRow[]> {
  return db.query<OutboxRow>(
    `SELECT o.*, coalesce(o.body, "${schema}".event_body(o.order_id, o.event_type)) AS body FROM "${schema}".outbox o ORDER BY id`,
  );
}

/** A `createStack` for one describe block: every stack it made is closed after the block. */
export function stacksClosedAfter(): typeof createStack {
  const stacks: Stack[] = [];
  after(async () => {
    for (const s of stacks) await s.close();
  });
  return async (...args) => {
    const s = await createStack(...args);
    stacks.push(s);
    return s;
  };
}
