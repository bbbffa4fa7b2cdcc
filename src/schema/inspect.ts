// What `start` checks about our schema before it runs, and what a status command can report: damage
// done by hand (a table dropped, a column altered, the trigger disabled) and the privileges the
// service role needs. Reads only the system catalogs, so it answers for any role; the health model
// (src/health/model.ts) words what it finds.
import type pg from 'pg';
import { ident } from '../db.ts';
import { triggerName } from '../capture/render.ts';

/**
 * What the role that runs `start` needs on each of our tables; nothing on the order app's. A table
 * that a new migration adds and the service uses must be added here: the GRANT script and start's
 * check come from this list. Identity columns need no grant on their sequences.
 */
export const SERVICE_PRIVILEGES: Readonly<Record<string, readonly string[]>> = {
  migration: ['SELECT'],
  capture: ['SELECT'],
  installation: ['SELECT'],
  change: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  outbox: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  outbox_attempt: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  endpoint_state: ['SELECT', 'INSERT', 'UPDATE'],
  alert: ['SELECT', 'INSERT', 'UPDATE'],
};

/**
 * The views operators read (docs/operations.md): the service's page and `status` read some of them,
 * and an operator may run the commands with the service's URL. SELECT only; the tables behind them
 * are read with the views' owner's privileges.
 */
export const SERVICE_VIEWS: readonly string[] = ['events', 'attempts', 'pending', 'failures', 'summary', 'endpoint_states'];

/** Every privilege the service role needs, tables and views. */
const NEEDED: Readonly<Record<string, readonly string[]>> = {
  ...SERVICE_PRIVILEGES,
  ...Object.fromEntries(SERVICE_VIEWS.map((view) => [view, ['SELECT']])),
};

/** The columns the capture trigger writes, all text (migrations/capture.sql). */
const TRIGGER_COLUMNS = ['order_id', 'op', 'old_state', 'new_state', 'old_due_date', 'new_due_date'];

/** The GRANTs the owner of our schema runs for the role that runs `start`. */
export function serviceGrantScript(schema: string, role: string): string {
  const table = (name: string) => `${ident(schema)}.${ident(name)}`;
  const byPrivileges = new Map<string, string[]>();
  for (const [name, privileges] of Object.entries(NEEDED)) {
    const key = privileges.join(', ');
    byPrivileges.set(key, [...(byPrivileges.get(key) ?? []), table(name)]);
  }
  const lines = [
    `-- What the role ${ident(role)} needs to run \`order-webhooks start\` on schema ${ident(schema)}: nothing on the`,
    "-- order app's tables. Run as the owner of the schema, after `order-webhooks migrate`.",
    `GRANT USAGE ON SCHEMA ${ident(schema)} TO ${ident(role)};`,
  ];
  for (const [privileges, tables] of byPrivileges) lines.push(`GRANT ${privileges} ON ${tables.join(', ')} TO ${ident(role)};`);
  return lines.join('\n');
}

/** The privileges the connected role lacks to run `start`; empty when the schema is missing (reported elsewhere). */
export async function missingServicePrivileges(db: pg.ClientBase | pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await db.query<{ missing: string }>(
    `WITH s AS (SELECT oid FROM pg_namespace WHERE nspname = $1),
          wanted AS (SELECT key AS name, jsonb_array_elements_text(value) AS privilege FROM jsonb_each($2::jsonb))
     SELECT format('USAGE on schema %I', $1) AS missing FROM s WHERE NOT has_schema_privilege(s.oid, 'USAGE')
     UNION ALL
     SELECT format('%s on %I.%I', w.privilege, $1, w.name)
       FROM wanted w JOIN pg_class c ON c.relname = w.name JOIN s ON c.relnamespace = s.oid
      WHERE NOT has_table_privilege(c.oid, w.privilege)`,
    [schema, JSON.stringify(NEEDED)],
  );
  return rows.map((row) => row.missing);
}

interface Column {
  name: string;
  type: string;
  not_null: boolean;
  filled: boolean;
}

/**
 * Damage to our schema, one line per problem: what is wrong and what it does to the order app or to
 * delivery. Empty when nothing is wrong. Checks what makes the trigger fail (the order app's write
 * is then refused) or do nothing (changes are then not captured); a status command can call it.
 */
export async function inspectSchema(db: pg.ClientBase | pg.Pool, schema: string): Promise<string[]> {
  const { rows: namespaces } = await db.query<{ oid: number }>('SELECT oid FROM pg_namespace WHERE nspname = $1', [schema]);
  if (namespaces.length === 0) return [`schema ${ident(schema)} does not exist: run \`order-webhooks migrate\``];
  const namespace = namespaces[0]!.oid;
  const problems: string[] = [];
  const qualified = (name: string) => `${ident(schema)}.${ident(name)}`;

  const { rows: tables } = await db.query<{ name: string }>(
    "SELECT relname AS name FROM pg_class WHERE relnamespace = $1 AND relkind IN ('r', 'p')",
    [namespace],
  );
  const present = new Set(tables.map((t) => t.name));
  for (const name of Object.keys(SERVICE_PRIVILEGES)) {
    if (present.has(name)) continue;
    problems.push(
      name === 'change'
        ? `table ${qualified(name)} is missing: the capture trigger fails, and every order app write that it fires for is refused`
        : `table ${qualified(name)} is missing`,
    );
  }

  if (present.has('change')) {
    const { rows: columns } = await db.query<Column>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
              (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') AS filled
         FROM pg_attribute a
        WHERE a.attrelid = (SELECT oid FROM pg_class WHERE relnamespace = $1 AND relname = 'change')
          AND a.attnum > 0 AND NOT a.attisdropped`,
      [namespace],
    );
    const fails = 'the capture trigger fails, and order app writes are refused';
    for (const name of TRIGGER_COLUMNS) {
      const column = columns.find((c) => c.name === name);
      if (!column) problems.push(`column ${ident(name)} of ${qualified('change')} is missing: ${fails}`);
      else if (column.type !== 'text')
        problems.push(`column ${ident(name)} of ${qualified('change')} is ${column.type}, not text: ${fails}`);
    }
    for (const column of columns) {
      if (column.not_null && !column.filled && !TRIGGER_COLUMNS.includes(column.name)) {
        problems.push(`column ${ident(column.name)} of ${qualified('change')} is NOT NULL with no default: ${fails}`);
      }
    }
  }

  const { rows: functions } = await db.query<{ oid: number; definer: boolean }>(
    "SELECT oid, prosecdef AS definer FROM pg_proc WHERE pronamespace = $1 AND proname = 'capture_change'",
    [namespace],
  );
  const fn = functions[0];
  if (!fn) {
    problems.push(`function ${qualified('capture_change')} is missing: order changes are not captured; run \`order-webhooks migrate\``);
    return problems;
  }
  if (!fn.definer) {
    problems.push(
      `function ${qualified('capture_change')} is not SECURITY DEFINER: order app writes are refused unless its role has privileges on our schema`,
    );
  }
  // Triggers cloned onto partitions of a partitioned orders table follow their parent's.
  const { rows: triggers } = await db.query<{ name: string; enabled: string; table: string }>(
    'SELECT tgname AS name, tgenabled AS enabled, tgrelid::regclass::text AS table FROM pg_trigger WHERE tgfoid = $1 AND tgparentid = 0',
    [fn.oid],
  );
  for (const kind of ['insert', 'update'] as const) {
    const name = triggerName(schema, kind);
    const trigger = triggers.find((t) => t.name === name);
    if (!trigger) {
      problems.push(`trigger ${ident(name)} is missing: order ${kind}s are not captured; run \`order-webhooks migrate\``);
    } else if (trigger.enabled !== 'O' && trigger.enabled !== 'A') {
      problems.push(
        `trigger ${ident(name)} on ${trigger.table} is disabled: order ${kind}s are not captured; ALTER TABLE ${trigger.table} ENABLE TRIGGER ${ident(name)}`,
      );
    }
  }
  return problems;
}
