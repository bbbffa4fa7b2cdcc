// The capture trigger: checks the configured orders table, renders migrations/capture.sql for it,
// installs it, and tells `start` whether the installed one is the one this config wants.
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import type { OrdersConfig } from '../config/config.ts';
import { CaptureError } from '../errors.ts';
import { ident, literal, lockKey, wakeChannel } from '../db.ts';

const TEMPLATE_URL = new URL('../../migrations/capture.sql', import.meta.url);

export interface CaptureTarget {
  schema: string;
  orders: Pick<OrdersConfig, 'schema' | 'table' | 'idColumn' | 'stateColumn' | 'dueDateColumn'>;
}

export function qualifiedOrdersTable(target: CaptureTarget): string {
  return `${ident(target.orders.schema)}.${ident(target.orders.table)}`;
}

export function triggerName(schema: string, kind: 'insert' | 'update'): string {
  return `${schema}_capture_${kind}`.slice(-63);
}

/** Substitutes `:NAME` placeholders; an unknown one is a bug in the template, so it throws. */
export function renderSql(template: string, values: Record<string, string>): string {
  return template.replace(/:([A-Z][A-Z_]*)\b/g, (whole, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`SQL template placeholder ${whole} has no value`);
    return value;
  });
}

/** The SQL that installs the trigger for this config. */
export function renderCapture(target: CaptureTarget): string {
  const { schema, orders } = target;
  const due = orders.dueDateColumn === undefined ? undefined : ident(orders.dueDateColumn);
  return renderSql(readFileSync(TEMPLATE_URL, 'utf8'), {
    SCHEMA: ident(schema),
    ORDERS: qualifiedOrdersTable(target),
    ID: ident(orders.idColumn),
    STATE: ident(orders.stateColumn),
    // JSON renders dates and timestamps in ISO 8601 whatever the order app's DateStyle.
    OLD_DUE: due ? `to_jsonb(OLD.${due}) #>> '{}'` : 'NULL',
    NEW_DUE: due ? `to_jsonb(NEW.${due}) #>> '{}'` : 'NULL',
    DUE_CHANGED: due ? ` OR OLD.${due} IS DISTINCT FROM NEW.${due}` : '',
    CHANNEL: literal(wakeChannel(schema)),
    WAKE_LOCK: lockKey(schema, 'wake'),
    INSERT_TRIGGER: ident(triggerName(schema, 'insert')),
    UPDATE_TRIGGER: ident(triggerName(schema, 'update')),
  });
}

interface ColumnInfo {
  name: string;
  type: string;
  category: string;
  kind: string;
}

const DATE_TYPES = new Set(['date', 'timestamp without time zone', 'timestamp with time zone']);

/** Checks that the orders table and its columns exist with usable types; names the config key if not. */
export async function checkOrdersTable(db: pg.ClientBase | pg.Pool, target: CaptureTarget): Promise<void> {
  const { orders } = target;
  const table = qualifiedOrdersTable(target);
  const { rows } = await db.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            t.typcategory AS category, t.typtype AS kind
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       JOIN pg_type t ON t.oid = a.atttypid
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
    [orders.schema, orders.table],
  );
  if (rows.length === 0) {
    throw new CaptureError(`orders.table: table ${table} does not exist (check orders.schema and orders.table)`);
  }
  const column = (key: 'idColumn' | 'stateColumn' | 'dueDateColumn', name: string): ColumnInfo => {
    const found = rows.find((row) => row.name === name);
    if (!found) throw new CaptureError(`orders.${key}: column ${ident(name)} not found in ${table}`);
    return found;
  };
  column('idColumn', orders.idColumn);
  const state = column('stateColumn', orders.stateColumn);
  if (state.category !== 'S' && state.kind !== 'e') {
    throw new CaptureError(
      `orders.stateColumn: column ${ident(orders.stateColumn)} is ${state.type}; expected text, varchar or an enum type`,
    );
  }
  if (orders.dueDateColumn !== undefined) {
    const due = column('dueDateColumn', orders.dueDateColumn);
    if (!DATE_TYPES.has(due.type)) {
      throw new CaptureError(`orders.dueDateColumn: column ${ident(orders.dueDateColumn)} is ${due.type}; expected date or timestamp`);
    }
  }
}

interface InstalledCapture {
  orders_table: string;
  definition: string;
  triggers: number;
}

async function installedCapture(db: pg.ClientBase | pg.Pool, schema: string): Promise<InstalledCapture | undefined> {
  const { rows } = await db.query<InstalledCapture>(
    `SELECT orders_table, definition,
            (SELECT count(*)::int FROM pg_trigger
              WHERE tgname IN ($1, $2) AND tgrelid = to_regclass(orders_table)) AS triggers
       FROM ${ident(schema)}.capture`,
    [triggerName(schema, 'insert'), triggerName(schema, 'update')],
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
  if (installed && installed.definition === definition && installed.triggers === 2) return false;
  if (installed && installed.orders_table !== table) {
    // The config now names another table: take the trigger off the old one.
    for (const kind of ['insert', 'update'] as const) {
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
  if (installed?.triggers !== 2) {
    throw new CaptureError(`the capture trigger is not installed on ${table}: run \`order-webhooks migrate\` first`);
  }
  if (installed.definition !== renderCapture(target)) {
    throw new CaptureError(
      `the capture trigger on ${installed.orders_table} was installed for another config: run \`order-webhooks migrate\` to update it`,
    );
  }
}
