// Installs the capture trigger (in the caller's transaction), takes it off a table, and reads what
// is installed (the health model, src/health/, judges whether it is the one this config wants). The
// one owner of DDL on the order app's table.
import type pg from 'pg';
import { ident, literal } from '../db.ts';
import { checkOrdersTable } from './ordersTable.ts';
import { ALL_TRIGGERS, type CaptureTarget, qualifiedOrdersTable, renderCapture, triggerName } from './render.ts';

/** The `capture` row: the table and definition `migrate` installed, and how many of our triggers that table has. */
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
 * Installs (or re-installs, when the config changed) the trigger, in the caller's transaction.
 * Returns false when the installed trigger is already the one this config wants.
 */
export async function installCapture(client: pg.ClientBase, target: CaptureTarget): Promise<boolean> {
  await checkOrdersTable(client, target);
  const definition = renderCapture(target);
  const table = qualifiedOrdersTable(target);
  const installed = await installedCapture(client, target.schema);
  if (installed && installed.definition === definition && installed.triggers === ALL_TRIGGERS.length) return false;
  if (installed && installed.orders_table !== table) {
    // The config now names another table: take the trigger off the old one.
    for (const kind of ALL_TRIGGERS) {
      await client.query(
        `DO $$ BEGIN
           IF to_regclass(${literal(installed.orders_table)}) IS NOT NULL THEN
             EXECUTE ${literal(`DROP TRIGGER IF EXISTS ${ident(triggerName(target.schema, kind))} ON ${installed.orders_table}`)};
           END IF;
         END $$`,
      );
    }
  }
  await client.query(definition);
  await client.query(
    `INSERT INTO ${ident(target.schema)}.capture (orders_table, definition) VALUES ($1, $2)
     ON CONFLICT (singleton) DO UPDATE SET orders_table = $1, definition = $2, installed_at = now()`,
    [table, definition],
  );
  return true;
}
