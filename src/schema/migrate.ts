// Installs our schema into the orders database: numbered SQL migrations, then the capture trigger.
// Safe to run again (recorded, idempotent) and from two processes at once (advisory lock).
import { readdirSync, readFileSync } from 'node:fs';
import type pg from 'pg';
import { type CaptureTarget, qualifiedOrdersTable, renderSql } from '../capture/render.ts';
import { checkOrdersTable } from '../capture/ordersTable.ts';
import {
  BEGIN_DDL,
  COMMIT,
  captureStatements,
  type InstalledCapture,
  readInstalledCapture,
  withOrdersTableLock,
} from '../capture/install.ts';
import { inspectSchema } from './inspect.ts';
import { checkSessionConnections } from './pooler.ts';
import { type Db, describeDbError, ident, literal, lockKey, openClient } from '../db.ts';
import { AppError, CaptureError, MigrationError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { reportWakeUp, type WakeUpReport } from '../capture/wakeUp.ts';

const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);
/** How long one DDL statement may wait for a lock on a busy orders table before it gives up. */

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

/** What `migrate` finds in the database before it plans: our schema, the migrations applied, the trigger. */
export interface Installed {
  schema: boolean;
  migrationTable: boolean;
  versions: number[];
  capture: InstalledCapture | undefined;
}

/** A database without our schema, as `migrate --dry-run` assumes when it cannot reach the database. */
export const NOTHING_INSTALLED: Installed = { schema: false, migrationTable: false, versions: [], capture: undefined };

export async function readInstalled(client: pg.ClientBase, schema: string): Promise<Installed> {
  const { rows } = await client.query<{ schema: boolean; migration: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema, to_regclass($2) IS NOT NULL AS migration`,
    [schema, `${ident(schema)}.migration`],
  );
  const found = rows[0]!;
  const versions = found.migration
    ? (await client.query<{ version: number }>(`SELECT version FROM ${ident(schema)}.migration`)).rows.map((r) => r.version)
    : [];
  const capture = await readInstalledCapture(client, schema);
  return { schema: found.schema, migrationTable: found.migration, versions, capture };
}

/**
 * Everything `migrate` changes, as the SQL it sends: `statements` are run one after the other, and
 * `--dry-run` prints them, so what a DBA reads is what runs. Empty when there is nothing to do.
 */
export interface MigrationPlan {
  pending: Migration[];
  installsCapture: boolean;
  /** What runs inside the transaction. */
  work: string[];
  /** The whole of it: BEGIN_DDL, the work, COMMIT (none when there is nothing to do). */
  statements: string[];
}

export function planMigration(target: CaptureTarget, installed: Installed): MigrationPlan {
  const schema = ident(target.schema);
  const pending = listMigrations(target.schema).filter((m) => !installed.versions.includes(m.version));
  const capture = captureStatements(target, installed.capture);
  const work = [
    // A schema the DBA created for the owner is used as it is: CREATE SCHEMA, even with IF NOT
    // EXISTS, needs the CREATE privilege on the database.
    ...(installed.schema ? [] : [`CREATE SCHEMA ${schema};`]),
    ...(installed.migrationTable
      ? []
      : [
          `CREATE TABLE ${schema}.migration (
  version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());`,
        ]),
    ...pending.flatMap((m) => [
      `-- migration ${m.version}: ${m.name}\n${m.sql.trim()}`,
      `INSERT INTO ${schema}.migration (version, name) VALUES (${m.version}, ${literal(m.name)});`,
    ]),
    ...capture,
  ];
  // All of it in one transaction: an order transaction sees either the old schema and trigger or
  // the new ones, never a mix.
  const statements = work.length === 0 ? [] : [BEGIN_DDL, ...work, COMMIT];
  return { pending, installsCapture: capture.length > 0, work, statements };
}

/** The statements as a script for psql: each exactly as `migrate` sends it, a blank line between. */
export function planScript(statements: string[]): string {
  return statements.map((statement) => `${statement}\n`).join('\n');
}

export interface MigrateResult {
  applied: string[];
  captureInstalled: boolean;
  /** The wake-up now in effect on this server. */
  wakeUp: WakeUpReport;
  /** Every statement that changed the database, as `migrate --dry-run` printed them beforehand. */
  statements: string[];
}

// Bounded connect and keepalive, but no statement timeout: DDL may legitimately take a while, and
// nothing in the startup packet, which a pooler may refuse before the probe can say why.
function connect(url: string, log: Logger): Promise<pg.Client> {
  return openClient(url, { name: 'order-webhooks migrate', statementTimeoutMs: null, startupOptions: false }, (error) =>
    log.warn({ error: error.message }, 'migration connection failed'),
  );
}

/** What `migrate` would run on this database now, read without changing anything: for `--dry-run`. */
export async function planFor(url: string, target: CaptureTarget, log: Logger): Promise<MigrationPlan> {
  const client = await connect(url, log);
  try {
    await checkOrdersTable(client, target);
    return planMigration(target, await readInstalled(client, target.schema));
  } catch (error) {
    if (error instanceof CaptureError) throw error;
    throw new MigrationError(`reading what is installed failed: ${describeDbError(error)}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function migrate(url: string, target: CaptureTarget, log: Logger, idlePollMs = 50): Promise<MigrateResult> {
  const client = await connect(url, log);
  const schema = ident(target.schema);
  try {
    // Its advisory lock would stay behind on a pooled server connection, and hold off every later migrate.
    await checkSessionConnections(url, { startupOptions: false });
    // One migrator at a time; the second waits, then finds nothing left to do.
    await client.query('SELECT pg_advisory_lock($1)', [lockKey(target.schema, 'migrate')]);
    // A table we cannot capture is refused before anything is created.
    await checkOrdersTable(client, target);
    const plan = planMigration(target, await readInstalled(client, target.schema));
    if (plan.work.length > 0) {
      await withOrdersTableLock(
        client,
        qualifiedOrdersTable(target),
        plan.pending.length > 0 ? `migration ${plan.pending.map((m) => m.version).join(', ')}` : 'capture trigger',
        async () => {
          for (const statement of plan.work) await client.query(statement);
        },
        log,
      );
    }
    // What migrate cannot mend (a table of ours dropped or altered by hand, a trigger disabled) is
    // said here rather than reported as up to date.
    const damage = await inspectSchema(client, target.schema);
    if (damage.length > 0) {
      throw new CaptureError(
        `schema ${schema} is damaged and migrate cannot repair it: ${damage.join('; ')} (docs/security.md, "If our schema is damaged")`,
      );
    }
    const applied = plan.pending.map((m) => `${m.version}_${m.name}`);
    for (const migration of applied) log.info({ migration }, 'migration applied');
    if (plan.installsCapture) log.info({ table: qualifiedOrdersTable(target) }, 'capture trigger installed');
    const wakeUp = await reportWakeUp(client, target.wakeUp ?? 'auto', idlePollMs);
    return { applied, captureInstalled: plan.installsCapture, wakeUp, statements: plan.statements };
  } catch (error) {
    // Ours already say what happened (a damaged schema, a pooler, the orders table kept busy).
    if (error instanceof AppError) throw error;
    throw new MigrationError(`migration failed: ${describeDbError(error)}`);
  } finally {
    await client.end().catch(() => undefined); // closing releases the advisory lock too
  }
}

/**
 * The version our schema is at: the highest migration applied, or null when it is not installed.
 * Looked up first, so that a missing schema is an answer rather than an error.
 */
export async function readSchemaVersion(db: Db, schema: string): Promise<number | null> {
  const exists = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [`${ident(schema)}.migration`]);
  if (!exists.rows[0]?.present) return null;
  const { rows } = await db.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${ident(schema)}.migration`);
  return rows[0]?.version ?? null;
}
