// Installs the capture trigger: the statements `migrate` runs in its transaction (taking it off a
// table the config no longer names), and whether the installed one is the one this config wants,
// for `start`. The one owner of DDL on the order app's table.
import type pg from 'pg';
import { ident, literal } from '../db.ts';
import { CaptureError } from '../errors.ts';
import { ALL_TRIGGERS, type CaptureTarget, qualifiedOrdersTable, renderCapture, triggerName } from './render.ts';

export interface InstalledCapture {
  orders_table: string;
  definition: string;
  triggers: number;
}

export async function installedCapture(db: pg.ClientBase | pg.Pool, schema: string): Promise<InstalledCapture | undefined> {
  // The table is found through the catalogs, not to_regclass: that needs USAGE on the order app's
  // schema, which the service role does not have.
  const { rows } = await db.query<InstalledCapture>(
    `SELECT orders_table, definition,
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
 * The statements that install (or re-install, when the config changed) the trigger and record it,
 * for `migrate` to run in its transaction; none when the installed one is the one this config wants.
 */
export function captureStatements(target: CaptureTarget, installed: InstalledCapture | undefined): string[] {
  const definition = renderCapture(target);
  const table = qualifiedOrdersTable(target);
  if (installed && installed.definition === definition && installed.triggers === ALL_TRIGGERS.length) return [];
  const statements: string[] = [];
  if (installed && installed.orders_table !== table) {
    // The config now names another table: take the trigger off the old one.
    for (const kind of ALL_TRIGGERS) {
      statements.push(
        `DO $$ BEGIN
  IF to_regclass(${literal(installed.orders_table)}) IS NOT NULL THEN
    EXECUTE ${literal(`DROP TRIGGER IF EXISTS ${ident(triggerName(target.schema, kind))} ON ${installed.orders_table}`)};
  END IF;
END $$;`,
      );
    }
  }
  statements.push(`-- capture trigger on ${table}\n${definition.trimEnd()}`);
  statements.push(
    `INSERT INTO ${ident(target.schema)}.capture (orders_table, definition) VALUES (${literal(table)}, ${literal(definition)})
  ON CONFLICT (singleton) DO UPDATE SET orders_table = EXCLUDED.orders_table, definition = EXCLUDED.definition, installed_at = now();`,
  );
  return statements;
}

/** For `start`: the trigger for this config is installed, or a message saying what to run. */
export async function checkCaptureInstalled(db: pg.Pool, target: CaptureTarget): Promise<void> {
  const installed = await installedCapture(db, target.schema);
  const table = qualifiedOrdersTable(target);
  if (!installed?.triggers) {
    throw new CaptureError(`the capture trigger is not installed on ${table}: run \`order-webhooks migrate\` first`);
  }
  // Fewer triggers than this release installs: one from an earlier release, or some were dropped.
  if (installed.definition !== renderCapture(target) || installed.triggers !== ALL_TRIGGERS.length) {
    throw new CaptureError(
      `the capture trigger on ${installed.orders_table} was installed for another config or release: run \`order-webhooks migrate\` to update it`,
    );
  }
}
