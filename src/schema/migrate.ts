// Installs our schema into the orders database: numbered SQL migrations, then the capture trigger.
// Safe to run again (recorded, idempotent) and from two processes at once (advisory lock).
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { type CaptureTarget, qualifiedOrdersTable, renderCapture, renderSql } from '../capture/render.ts';
import { checkOrdersTable } from '../capture/ordersTable.ts';
import { installCapture } from '../capture/install.ts';
import { inspectSchema } from './inspect.ts';
import { checkSessionConnections } from './pooler.ts';
import { CONNECT_TIMEOUT_MS, describeDbError, ident, KEEPALIVE_IDLE_MS, lockKey } from '../db.ts';
import { CaptureError, DatabaseUnreachableError, MigrationError, PoolerError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { reportWakeUp, type WakeUpReport } from '../capture/wakeUp.ts';

const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);
/** How long one DDL statement may wait for a lock on a busy orders table before it gives up. */
const LOCK_TIMEOUT = '2s';
const LOCK_TRIES = 5;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function listMigrations(schema: string): Migration[] {
  return readdirSync(MIGRATIONS_DIR)
    .map((file) => /^(\d{6})_(.+)\.sql$/.exec(file))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({
      version: Number(match[1]),
      name: match[2]!,
      sql: renderSql(readFileSync(new URL(match[0], MIGRATIONS_DIR), 'utf8'), { SCHEMA: ident(schema) }),
    }))
    .sort((a, b) => a.version - b.version);
}

export const LATEST_VERSION = (): number => Math.max(...listMigrations('x').map((m) => m.version));

/** The whole SQL `migrate` would run on an empty database, for a DBA to review. */
export function migrationScript(target: CaptureTarget): string {
  const parts = [`CREATE SCHEMA IF NOT EXISTS ${ident(target.schema)};`];
  for (const m of listMigrations(target.schema)) parts.push(`-- migration ${m.version}: ${m.name}\n${m.sql}`);
  parts.push(`-- capture trigger on ${qualifiedOrdersTable(target)}\n${renderCapture(target)}`);
  return parts.join('\n\n');
}

async function inTransaction<T>(client: pg.ClientBase, work: () => Promise<T>): Promise<T> {
  await client.query(`BEGIN; SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
  try {
    const result = await work();
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined); // the original error is the one to report
    throw error;
  }
}

// DDL on the order app's table may wait behind its transactions: give up quickly and try again
// rather than queue every order statement behind our lock request.
async function withLockRetries<T>(log: Logger, what: string, work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if ((error as pg.DatabaseError).code !== '55P03' || attempt >= LOCK_TRIES) throw error;
      log.warn({ attempt }, `${what}: a lock was not granted within ${LOCK_TIMEOUT}; trying again`);
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

export interface MigrateResult {
  applied: string[];
  captureInstalled: boolean;
  /** The wake-up now in effect on this server. */
  wakeUp: WakeUpReport;
}

export async function migrate(url: string, target: CaptureTarget, log: Logger, idlePollMs = 50): Promise<MigrateResult> {
  // Bounded connect and keepalive, but no statement timeout: DDL may legitimately take a while.
  const client = new pg.Client({
    connectionString: url,
    application_name: 'order-webhooks migrate',
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS,
  });
  client.on('error', (error) => log.warn({ error: error.message }, 'migration connection failed'));
  try {
    await client.connect();
  } catch (error) {
    throw new DatabaseUnreachableError(`cannot connect to the database: ${describeDbError(error)}`);
  }
  const schema = ident(target.schema);
  try {
    // Its advisory lock would stay behind on a pooled server connection, and hold off every later migrate.
    await checkSessionConnections(url, { startupOptions: false });
    // One migrator at a time; the second waits, then finds nothing left to do.
    await client.query('SELECT pg_advisory_lock($1)', [lockKey(target.schema, 'migrate')]);
    // A table we cannot capture is refused before anything is created.
    await checkOrdersTable(client, target);
    // A schema the DBA created for the owner is used as it is: CREATE SCHEMA, even with IF NOT
    // EXISTS, needs the CREATE privilege on the database.
    const { rowCount } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [target.schema]);
    if (rowCount === 0) await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${schema}.migration (
         version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set((await client.query<{ version: number }>(`SELECT version FROM ${schema}.migration`)).rows.map((r) => r.version));
    // The pending migrations and the trigger that goes with them in one transaction: an order
    // transaction sees either the old schema and trigger or the new ones, never a mix.
    const pending = listMigrations(target.schema).filter((m) => !done.has(m.version));
    const captureInstalled = await withLockRetries(
      log,
      pending.length > 0 ? `migration ${pending.map((m) => m.version).join(', ')}` : 'capture trigger',
      () =>
        inTransaction(client, async () => {
          for (const migration of pending) {
            await client.query(migration.sql);
            await client.query(`INSERT INTO ${schema}.migration (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
          }
          return installCapture(client, target);
        }),
    );
    // What migrate cannot mend (a table of ours dropped or altered by hand, a trigger disabled) is
    // said here rather than reported as up to date.
    const damage = await inspectSchema(client, target.schema);
    if (damage.length > 0) {
      throw new CaptureError(
        `schema ${schema} is damaged and migrate cannot repair it: ${damage.join('; ')} (docs/security.md, "If our schema is damaged")`,
      );
    }
    const applied = pending.map((m) => `${m.version}_${m.name}`);
    for (const migration of applied) log.info({ migration }, 'migration applied');
    if (captureInstalled) log.info({ table: qualifiedOrdersTable(target) }, 'capture trigger installed');
    const wakeUp = await reportWakeUp(client, target.wakeUp ?? 'auto', idlePollMs);
    return { applied, captureInstalled, wakeUp };
  } catch (error) {
    if (error instanceof CaptureError || error instanceof PoolerError) throw error;
    if ((error as pg.DatabaseError).code === '55P03') {
      throw new MigrationError(
        `gave up after ${LOCK_TRIES} tries: ${qualifiedOrdersTable(target)} stayed locked by other transactions for more than ${LOCK_TIMEOUT} each time; run migrate again when the order app is quieter`,
      );
    }
    throw new MigrationError(`migration failed: ${describeDbError(error)}`);
  } finally {
    await client.end().catch(() => undefined); // closing releases the advisory lock too
  }
}
