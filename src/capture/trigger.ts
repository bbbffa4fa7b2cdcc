// The capture trigger: checks the configured orders table, renders migrations/capture.sql for it,
// installs it, tells `start` whether the installed one is the one this config wants, and reports
// how the installed triggers fire. The rules per kind of table are in docs/how-it-works.md
// ("Tables we capture").
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type pg from 'pg';
import type { OrdersConfig } from '../config/config.ts';
import { CaptureError } from '../errors.ts';
import { ident, literal, lockKey, wakeChannel } from '../db.ts';
import { notifyCondition, type WakeUpMode } from './wakeUp.ts';

const TEMPLATE_URL = new URL('../../migrations/capture.sql', import.meta.url);

export interface CaptureTarget {
  schema: string;
  orders: Pick<OrdersConfig, 'schema' | 'table' | 'idColumn' | 'stateColumn' | 'dueDateColumn'> &
    Partial<Pick<OrdersConfig, 'replicaSessions'>>;
  /** `database.wakeUp`; default `auto`. */
  wakeUp?: WakeUpMode;
}

export function qualifiedOrdersTable(target: CaptureTarget): string {
  return `${ident(target.orders.schema)}.${ident(target.orders.table)}`;
}

/** Row triggers (cloned onto every partition) and statement triggers (on the named table only). */
const ROW_TRIGGERS = ['insert', 'update', 'delete'] as const;
const STATEMENT_TRIGGERS = ['delete_end', 'insert_start'] as const;
type TriggerKind = (typeof ROW_TRIGGERS)[number] | (typeof STATEMENT_TRIGGERS)[number];
export const ALL_TRIGGERS: readonly TriggerKind[] = [...ROW_TRIGGERS, ...STATEMENT_TRIGGERS];

export function triggerName(schema: string, kind: TriggerKind): string {
  return `${schema}_capture_${kind}`.slice(-63);
}

/** The transaction-local setting that carries a row moving between partitions (see capture.sql). */
export function movedSetting(schema: string): string {
  return `order_webhooks.moved_${createHash('sha256').update(schema).digest('hex').slice(0, 12)}`;
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
  const table = qualifiedOrdersTable(target);
  const names = Object.fromEntries(ALL_TRIGGERS.map((kind) => [`${kind.toUpperCase()}_TRIGGER`, ident(triggerName(schema, kind))]));
  const fireAlways =
    orders.replicaSessions === 'capture'
      ? [
          '-- orders.replicaSessions is capture: the triggers fire in sessions with session_replication_role = replica too.',
          ...ALL_TRIGGERS.map((kind) => `ALTER TABLE ${table} ENABLE ALWAYS TRIGGER ${ident(triggerName(schema, kind))};`),
        ].join('\n')
      : '-- orders.replicaSessions is skip: sessions with session_replication_role = replica are not captured.';
  return renderSql(readFileSync(TEMPLATE_URL, 'utf8'), {
    SCHEMA: ident(schema),
    ORDERS: table,
    ID: ident(orders.idColumn),
    STATE: ident(orders.stateColumn),
    // JSON renders dates and timestamps in ISO 8601 whatever the order app's DateStyle.
    OLD_DUE: due ? `to_jsonb(OLD.${due}) #>> '{}'` : 'NULL',
    NEW_DUE: due ? `to_jsonb(NEW.${due}) #>> '{}'` : 'NULL',
    DUE_CHANGED: due ? ` OR OLD.${due} IS DISTINCT FROM NEW.${due}` : '',
    CHANNEL: literal(wakeChannel(schema)),
    WAKE_LOCK: lockKey(schema, 'wake'),
    NOTIFY_ALLOWED: notifyCondition(target.wakeUp ?? 'auto'),
    MOVED: literal(movedSetting(schema)),
    ...names,
    FIRE_ALWAYS: fireAlways,
  });
}

interface TableInfo {
  oid: number;
  kind: string;
  partition_of: string | null;
  inheritance_child: string | null;
  foreign_partition: string | null;
}

interface ColumnInfo {
  name: string;
  /** As declared (a domain's own name). */
  type: string;
  /** Whether the declared type is a domain. */
  domain: boolean;
  /** After following domains down to their base type. */
  base: string;
  base_name: string;
  base_kind: string;
  category: string;
}

const RELATION_KINDS: Record<string, string> = {
  v: 'a view',
  m: 'a materialized view',
  f: 'a foreign table',
  S: 'a sequence',
  i: 'an index',
  I: 'an index',
  c: 'a composite type',
  t: 'a TOAST table',
};
/** SQL for a relation's name as we write it in messages: schema-qualified and always quoted, as ident() does. */
const QUALIFIED = (oid: string) =>
  `(SELECT '"' || replace(rn.nspname, '"', '""') || '"."' || replace(rc.relname, '"', '""') || '"'
      FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace WHERE rc.oid = ${oid})`;
const INTEGER_TYPES = new Set(['int2', 'int4', 'int8']);
const DATE_TYPES = new Set(['date', 'timestamp', 'timestamptz']);

/**
 * Checks that the orders table is one we can capture and its columns have usable types; otherwise
 * a CaptureError naming the config key and why. Reads the catalog only.
 */
export async function checkOrdersTable(db: pg.ClientBase | pg.Pool, target: CaptureTarget): Promise<void> {
  const { orders } = target;
  const table = qualifiedOrdersTable(target);
  const found = await db.query<TableInfo>(
    `SELECT c.oid, c.relkind AS kind,
            (SELECT ${QUALIFIED('i.inhparent')} FROM pg_inherits i WHERE i.inhrelid = c.oid AND c.relispartition LIMIT 1) AS partition_of,
            (SELECT ${QUALIFIED('i.inhrelid')} FROM pg_inherits i WHERE i.inhparent = c.oid AND c.relkind = 'r' LIMIT 1) AS inheritance_child,
            (SELECT ${QUALIFIED('t.relid')} FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid
              WHERE c.relkind = 'p' AND p.relkind = 'f' LIMIT 1) AS foreign_partition
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [orders.schema, orders.table],
  );
  const info = found.rows[0];
  if (!info) throw new CaptureError(`orders.table: table ${table} does not exist (check orders.schema and orders.table)`);
  if (info.kind === 'v' || info.kind === 'm') {
    throw new CaptureError(`orders.table: ${table} is ${RELATION_KINDS[info.kind]}; name the table the order app writes to`);
  }
  if (info.kind === 'f') {
    throw new CaptureError(
      `orders.table: ${table} is a foreign table; changes made on its own server never run triggers here: install order-webhooks in the database that holds the table`,
    );
  }
  if (info.kind !== 'r' && info.kind !== 'p') {
    throw new CaptureError(`orders.table: ${table} is ${RELATION_KINDS[info.kind] ?? 'not a table'}; name the orders table`);
  }
  if (info.partition_of) {
    throw new CaptureError(
      `orders.table: ${table} is a partition of ${info.partition_of}; name the partitioned table, so that orders moving between partitions are captured`,
    );
  }
  if (info.inheritance_child) {
    throw new CaptureError(
      `orders.table: ${table} has inheritance children (${info.inheritance_child}); rows written to a child never run the parent's triggers: use declarative partitioning (PARTITION BY) or a table without children`,
    );
  }
  if (info.foreign_partition) {
    throw new CaptureError(
      `orders.table: partition ${info.foreign_partition} of ${table} is a foreign table; changes made on its own server never run triggers here`,
    );
  }
  // Each column's type, domains followed down to their base type.
  const { rows } = await db.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type,
            a.atttypid <> b.oid AS domain, format_type(b.oid, NULL) AS base, b.typname AS base_name,
            b.typtype AS base_kind, b.typcategory AS category
       FROM pg_attribute a
       CROSS JOIN LATERAL (
         WITH RECURSIVE chain (oid, depth) AS (
           SELECT a.atttypid, 0
           UNION ALL
           SELECT t.typbasetype, chain.depth + 1 FROM chain JOIN pg_type t ON t.oid = chain.oid WHERE t.typtype = 'd')
         SELECT oid FROM chain ORDER BY depth DESC LIMIT 1) resolved
       JOIN pg_type b ON b.oid = resolved.oid
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
    [info.oid],
  );
  const column = (
    key: 'idColumn' | 'stateColumn' | 'dueDateColumn',
    name: string,
    expected: string,
    usable: (c: ColumnInfo) => boolean,
  ) => {
    const found = rows.find((row) => row.name === name);
    if (!found) throw new CaptureError(`orders.${key}: column ${ident(name)} not found in ${table}`);
    if (!usable(found)) {
      const shown = found.domain ? `${found.type} (a domain over ${found.base})` : found.type;
      throw new CaptureError(`orders.${key}: column ${ident(name)} is ${shown}; expected ${expected}`);
    }
  };
  const text = (c: ColumnInfo) => c.category === 'S';
  const integer = (c: ColumnInfo) => INTEGER_TYPES.has(c.base_name);
  column('idColumn', orders.idColumn, 'an integer, uuid or text type', (c) => text(c) || integer(c) || c.base_name === 'uuid');
  column(
    'stateColumn',
    orders.stateColumn,
    'text, varchar, an enum type or an integer code',
    (c) => text(c) || integer(c) || c.base_kind === 'e',
  );
  if (orders.dueDateColumn !== undefined) {
    column('dueDateColumn', orders.dueDateColumn, 'date or timestamp (with or without time zone)', (c) => DATE_TYPES.has(c.base_name));
  }
}

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

/** pg_trigger.tgenabled: when a trigger fires, by the session's session_replication_role. */
export type TriggerEnabled = 'O' | 'A' | 'R' | 'D';
export type TriggerFiring = 'origin' | 'always' | 'replica' | 'disabled';
const FIRING: Record<TriggerEnabled, TriggerFiring> = { O: 'origin', A: 'always', R: 'replica', D: 'disabled' };

export interface TriggerState {
  /** The orders table or one of its partitions, quoted and qualified. */
  table: string;
  trigger: string;
  enabled: TriggerEnabled;
  /** origin: not in replica sessions; always: in every session; replica: only in replica sessions; disabled: never. */
  firing: TriggerFiring;
}

export interface CaptureProblem {
  /** error: some order changes are not captured now; warn: more is captured than the config says. */
  level: 'error' | 'warn';
  message: string;
}

export interface CaptureStatus {
  table: string;
  /** What the config asks for: `always` with orders.replicaSessions = capture. */
  expected: 'origin' | 'always';
  /** How every installed trigger fires, when they all agree; `mixed` when not, `missing` when none is installed. */
  mode: TriggerFiring | 'mixed' | 'missing';
  triggers: TriggerState[];
  /** Empty when capture works as configured. One line each, naming the table and what to do. */
  problems: CaptureProblem[];
}

/**
 * How our triggers are installed on the orders table and each of its partitions (pg_trigger.tgenabled),
 * and what is wrong with that: for `status` / `check` and the service's periodic check. Catalog only.
 */
export async function captureTriggerStatus(db: pg.ClientBase | pg.Pool, target: CaptureTarget): Promise<CaptureStatus> {
  const table = qualifiedOrdersTable(target);
  const expected = target.orders.replicaSessions === 'capture' ? 'always' : 'origin';
  const names = ALL_TRIGGERS.map((kind) => triggerName(target.schema, kind));
  const { rows } = await db.query<{ table: string; root: boolean; leaf: boolean; trigger: string; enabled: TriggerEnabled | null }>(
    // The table and its partitions from the catalogs alone: to_regclass and pg_partition_tree need
    // privileges on the order app's schema and table, which the service role does not have.
    `WITH RECURSIVE t (relid, level, isleaf) AS (
         SELECT c.oid, 0, c.relkind <> 'p' FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
          WHERE s.nspname = $1 AND c.relname = $3
         UNION ALL
         SELECT i.inhrelid, t.level + 1, p.relkind <> 'p'
           FROM t JOIN pg_inherits i ON i.inhparent = t.relid JOIN pg_class p ON p.oid = i.inhrelid)
     SELECT ${QUALIFIED('t.relid')} AS table, t.level = 0 AS root, t.isleaf AS leaf, n.name AS trigger, g.tgenabled AS enabled
       FROM t
       CROSS JOIN unnest($2::text[]) n (name)
       LEFT JOIN pg_trigger g ON g.tgrelid = t.relid AND g.tgname = n.name
      ORDER BY t.level, 1, n.name`,
    [target.orders.schema, names, target.orders.table],
  );
  const statementNames = new Set(STATEMENT_TRIGGERS.map((kind) => triggerName(target.schema, kind)));
  const triggers: TriggerState[] = [];
  const missing = new Map<string, string[]>();
  for (const row of rows) {
    // Statement triggers live on the named table only; PostgreSQL clones row triggers onto partitions.
    if (!row.root && statementNames.has(row.trigger)) continue;
    if (row.enabled === null) missing.set(row.table, [...(missing.get(row.table) ?? []), row.trigger]);
    else triggers.push({ table: row.table, trigger: row.trigger, enabled: row.enabled, firing: FIRING[row.enabled] });
  }
  const problems: CaptureProblem[] = [];
  for (const [where, list] of missing) {
    problems.push({
      level: 'error',
      message: `capture trigger${list.length > 1 ? 's' : ''} ${list.join(', ')} missing on ${where}: its order changes are not captured; run \`order-webhooks migrate\``,
    });
  }
  const byTable = new Map<string, TriggerState[]>();
  for (const state of triggers) byTable.set(state.table, [...(byTable.get(state.table) ?? []), state]);
  for (const [where, states] of byTable) {
    const list = (firing: TriggerFiring) =>
      states
        .filter((s) => s.firing === firing)
        .map((s) => s.trigger)
        .join(', ');
    const enable = `ALTER TABLE ${where} ENABLE${expected === 'always' ? ' ALWAYS' : ''} TRIGGER <name>`;
    if (list('disabled')) {
      problems.push({
        level: 'error',
        message: `capture trigger disabled on ${where} (${list('disabled')}): its order changes are not captured; ${enable}`,
      });
    }
    if (list('replica')) {
      problems.push({
        level: 'error',
        message: `capture trigger fires only in replica sessions on ${where} (${list('replica')}): its order app's changes are not captured; ${enable}`,
      });
    }
    if (expected === 'always' && list('origin')) {
      problems.push({
        level: 'error',
        message: `capture trigger does not fire in replica sessions on ${where} (${list('origin')}) although orders.replicaSessions is capture; ${enable}`,
      });
    }
    if (expected === 'origin' && list('always')) {
      problems.push({
        level: 'warn',
        message: `capture trigger fires in replica sessions too on ${where} (${list('always')}) although orders.replicaSessions is skip; ${enable}`,
      });
    }
  }
  const firings = new Set(triggers.map((s) => s.firing));
  const mode = triggers.length === 0 ? 'missing' : firings.size === 1 ? triggers[0]!.firing : 'mixed';
  if (rows.length === 0) {
    problems.push({ level: 'error', message: `orders table ${table} does not exist: no order change is captured` });
  }
  return { table, expected, mode, triggers, problems };
}
