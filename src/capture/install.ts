// Installs the capture trigger: the statements `migrate` runs in its transaction (taking it off a
// table the config no longer names), and what is installed now (the health model, src/health/,
// judges whether that is the one this config wants). The one owner of DDL on the order app's
// table, and of the lock waits that DDL brings.
import type pg from 'pg';
import { type Db, ident, literal } from '../db.ts';
import { OrdersTableBusyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { ALL_TRIGGERS, type CaptureTarget, qualifiedOrdersTable, renderCapture, triggerName } from './render.ts';

/** How long one statement on the order app's table may wait for its lock before the try is given up. */
export const LOCK_TIMEOUT = '2s';
export const LOCK_TRIES = 5;
/** How a transaction with DDL on the order app's table begins (as sent, and as `--dry-run` prints it). */
export const BEGIN_DDL = `BEGIN;\nSET LOCAL lock_timeout = '${LOCK_TIMEOUT}';`;
export const COMMIT = 'COMMIT;';

/** The `capture` row `migrate` wrote, and how many of our triggers that table has now. */
export interface InstalledCapture {
  /** Quoted and qualified, as `migrate` installed it (the config may name another table since). */
  ordersTable: string;
  definition: string;
  triggers: number;
}

/** What is installed, or undefined: no `capture` table (before `migrate`), or no row (after `uninstall`). */
export async function readInstalledCapture(db: Db, schema: string): Promise<InstalledCapture | undefined> {
  // Through the catalogs, not to_regclass: that needs USAGE on the order app's schema, which the
  // service role does not have.
  const { rows: tables } = await db.query<{ present: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relname = 'capture') AS present`,
    [schema],
  );
  if (!tables[0]?.present) return undefined;
  const { rows } = await db.query<InstalledCapture>(
    `SELECT orders_table AS "ordersTable", definition,
            (SELECT count(*)::int FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE t.tgname = ANY($1)
                AND n.nspname = (parse_ident(orders_table))[1] AND c.relname = (parse_ident(orders_table))[2]) AS triggers
       FROM ${ident(schema)}.capture`,
    [ALL_TRIGGERS.map((kind) => triggerName(schema, kind))],
  );
  return rows[0];
}

/**
 * Runs `work` in a transaction (BEGIN_DDL … COMMIT) whose statements wait at most LOCK_TIMEOUT for
 * a lock, and tries again when one was not granted: DDL on the order app's table waits behind its
 * transactions, and every order statement would queue behind our waiting lock request. After
 * LOCK_TRIES refusals it gives up with an OrdersTableBusyError naming `table`.
 */
export async function withOrdersTableLock<T>(
  client: pg.ClientBase,
  table: string,
  what: string,
  work: () => Promise<T>,
  log?: Logger,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    await client.query(BEGIN_DDL);
    try {
      const result = await work();
      await client.query(COMMIT);
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined); // the original error is the one to report
      if ((error as pg.DatabaseError).code !== '55P03') throw error;
      if (attempt >= LOCK_TRIES) {
        throw new OrdersTableBusyError(
          `${what}: gave up after ${LOCK_TRIES} tries: ${table} stayed locked by other transactions for more than ${LOCK_TIMEOUT} each time; run it again when the order app is quieter`,
        );
      }
      log?.warn({ attempt }, `${what}: a lock was not granted within ${LOCK_TIMEOUT}; trying again`);
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

/**
 * The statements that take our triggers off `table` (quoted and qualified). Each acts only when the
 * table is still there: a table dropped since took its triggers with it.
 */
export function dropCaptureTriggers(schema: string, table: string): string[] {
  return ALL_TRIGGERS.map(
    (kind) => `DO $$ BEGIN
  IF to_regclass(${literal(table)}) IS NOT NULL THEN
    EXECUTE ${literal(`DROP TRIGGER IF EXISTS ${ident(triggerName(schema, kind))} ON ${table}`)};
  END IF;
END $$;`,
  );
}

/**
 * The statements that install (or re-install, when the config changed) the trigger and record it,
 * for `migrate` to run in its transaction; none when the installed one is the one this config wants.
 */
export function captureStatements(target: CaptureTarget, installed: InstalledCapture | undefined): string[] {
  const definition = renderCapture(target);
  const table = qualifiedOrdersTable(target);
  if (installed && installed.definition === definition && installed.triggers === ALL_TRIGGERS.length) return [];
  // The config now names another table: take the trigger off the old one.
  const statements = installed && installed.ordersTable !== table ? dropCaptureTriggers(target.schema, installed.ordersTable) : [];
  statements.push(`-- capture trigger on ${table}\n${definition.trimEnd()}`);
  statements.push(
    `INSERT INTO ${ident(target.schema)}.capture (orders_table, definition) VALUES (${literal(table)}, ${literal(definition)})
  ON CONFLICT (singleton) DO UPDATE SET orders_table = EXCLUDED.orders_table, definition = EXCLUDED.definition, installed_at = now();`,
  );
  return statements;
}
