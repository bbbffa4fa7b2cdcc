// Installs our schema into the orders database: numbered SQL migrations, then the capture trigger.
// Safe to run again (recorded, idempotent) and from two processes at once (advisory lock).
import { readdirSync, readFileSync } from 'node:fs';
import { type CaptureTarget, qualifiedOrdersTable, renderCapture, renderSql } from '../capture/render.ts';
import { checkOrdersTable } from '../capture/ordersTable.ts';
import { installCapture, withOrdersTableLock } from '../capture/install.ts';
import { inspectSchema } from './inspect.ts';
import { checkSessionConnections } from './pooler.ts';
import { type Db, describeDbError, ident, lockKey, openClient } from '../db.ts';
import { AppError, CaptureError, MigrationError, SchemaError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { reportWakeUp, type WakeUpReport } from '../capture/wakeUp.ts';

const MIGRATIONS_DIR = new URL('../../migrations/', import.meta.url);
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

export interface MigrateResult {
  applied: string[];
  captureInstalled: boolean;
  /** The wake-up now in effect on this server. */
  wakeUp: WakeUpReport;
}

export async function migrate(url: string, target: CaptureTarget, log: Logger, idlePollMs = 50): Promise<MigrateResult> {
  // Bounded connect and keepalive, but no statement timeout: DDL may legitimately take a while, and
  // nothing in the startup packet, which a pooler may refuse before the probe below can say why.
  const client = await openClient(url, { name: 'order-webhooks migrate', statementTimeoutMs: null, startupOptions: false }, (error) =>
    log.warn({ error: error.message }, 'migration connection failed'),
  );
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
    const captureInstalled = await withOrdersTableLock(
      client,
      qualifiedOrdersTable(target),
      pending.length > 0 ? `migration ${pending.map((m) => m.version).join(', ')}` : 'capture trigger',
      async () => {
        for (const migration of pending) {
          await client.query(migration.sql);
          await client.query(`INSERT INTO ${schema}.migration (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
        }
        return installCapture(client, target);
      },
      log,
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

/** For `start`: the schema is at the version this code expects. */
export async function checkSchemaVersion(db: Db, schema: string): Promise<void> {
  const latest = LATEST_VERSION();
  const version = await readSchemaVersion(db, schema);
  if (version === null) throw new SchemaError(`schema ${ident(schema)} is not installed: run \`order-webhooks migrate\` first`);
  if (version > latest) {
    throw new SchemaError(
      `schema ${ident(schema)} is at version ${version}, newer than this release knows (${latest}): run the release that migrated it`,
    );
  }
  if (version < latest) {
    throw new SchemaError(`schema ${ident(schema)} is at version ${version}, this release needs ${latest}: run \`order-webhooks migrate\``);
  }
}
