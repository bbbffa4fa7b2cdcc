// Installs the capture trigger (in the caller's transaction), takes it off a table, and tells
// `start` whether the installed one is the one this config wants. The one owner of DDL on the
// order app's table.
import type pg from 'pg';
import { ident, literal } from '../db.ts';
import { CaptureError } from '../errors.ts';
import { checkOrdersTable } from './ordersTable.ts';
import { ALL_TRIGGERS, type CaptureTarget, qualifiedOrdersTable, renderCapture, triggerName } from './render.ts';

interface InstalledCapture {
  orders_table: string;
  definition: string;
  triggers: number;
}

async function installedCapture(db: pg.ClientBase | pg.Pool, schema: string): Promise<InstalledCapture | undefined> {
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
