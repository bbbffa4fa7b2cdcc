// Installs our schema into the orders database: numbered SQL migrations, then the capture trigger.
// Safe to run again (recorded, idempotent) and from two processes at once (advisory lock).
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { type CaptureTarget, qualifiedOrdersTable, renderSql } from '../capture/render.ts';
import { checkOrdersTable } from '../capture/ordersTable.ts';
import { captureStatements, type InstalledCapture, installedCapture } from '../capture/install.ts';
import { inspectSchema } from './inspect.ts';
import { checkSessionConnections } from './pooler.ts';
import { CONNECT_TIMEOUT_MS, describeDbError, ident, KEEPALIVE_IDLE_MS, literal, lockKey } from '../db.ts';
import { CaptureError, DatabaseUnreachableError, MigrationError, PoolerError, SchemaError } from '../errors.ts';
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
  const { rows } = await client.query<{ schema: boolean; migration: boolean; capture: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS schema,
            to_regclass($2) IS NOT NULL AS migration, to_regclass($3) IS NOT NULL AS capture`,
    [schema, `${ident(schema)}.migration`, `${ident(schema)}.capture`],
  );
  const found = rows[0]!;
  const versions = found.migration
    ? (await client.query<{ version: number }>(`SELECT version FROM ${ident(schema)}.migration`)).rows.map((r) => r.version)
    : [];
  const capture = found.capture ? await installedCapture(client, schema) : undefined;
  return { schema: found.schema, migrationTable: found.migration, versions, capture };
}

/**
 * Everything `migrate` changes, as the SQL it sends: `statements` are run one after the other, and
 * `--dry-run` prints them, so what a DBA reads is what runs. Empty when there is nothing to do.
 */
export interface MigrationPlan {
  pending: Migration[];
  installsCapture: boolean;
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
  const statements = work.length === 0 ? [] : [`BEGIN;\nSET LOCAL lock_timeout = '${LOCK_TIMEOUT}';`, ...work, 'COMMIT;'];
  return { pending, installsCapture: capture.length > 0, statements };
}

/** The statements as a script for psql: each exactly as `migrate` sends it, a blank line between. */
export function planScript(statements: string[]): string {
  return statements.map((statement) => `${statement}\n`).join('\n');
}

async function runPlan(client: pg.ClientBase, plan: MigrationPlan): Promise<void> {
  try {
    for (const statement of plan.statements) await client.query(statement);
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
  /** Every statement that changed the database, as `migrate --dry-run` printed them beforehand. */
  statements: string[];
}

async function connect(url: string, log: Logger): Promise<pg.Client> {
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
  return client;
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
    await withLockRetries(
      log,
      plan.pending.length > 0 ? `migration ${plan.pending.map((m) => m.version).join(', ')}` : 'capture trigger',
      () => runPlan(client, plan),
    );
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

/** For `start`: the schema is at the version this code expects. */
export async function checkSchemaVersion(db: pg.Pool, schema: string): Promise<void> {
  const latest = LATEST_VERSION();
  let version: number | null = null;
  try {
    const { rows } = await db.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${ident(schema)}.migration`);
    version = rows[0]?.version ?? null;
  } catch (error) {
    if ((error as pg.DatabaseError).code !== '42P01' && (error as pg.DatabaseError).code !== '3F000') throw error;
  }
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
