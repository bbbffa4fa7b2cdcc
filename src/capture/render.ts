// The capture trigger's SQL: its names, and migrations/capture.sql rendered for one config. The
// rules per kind of table are in docs/how-it-works.md ("Tables we capture").
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { OrdersConfig } from '../config/config.ts';
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
export const STATEMENT_TRIGGERS = ['delete_end', 'insert_start'] as const;
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
    // Qualified: the function has no search_path of its own (capture.sql).
    OLD_DUE: due ? `pg_catalog.to_jsonb(OLD.${due}) OPERATOR(pg_catalog.#>>) '{}'` : 'NULL',
    NEW_DUE: due ? `pg_catalog.to_jsonb(NEW.${due}) OPERATOR(pg_catalog.#>>) '{}'` : 'NULL',
    DUE_CHANGED: due ? ` OR OLD.${due} IS DISTINCT FROM NEW.${due}` : '',
    CHANNEL: literal(wakeChannel(schema)),
    WAKE_LOCK: lockKey(schema, 'wake'),
    NOTIFY_ALLOWED: notifyCondition(target.wakeUp ?? 'auto'),
    MOVED: literal(movedSetting(schema)),
    ...names,
    FIRE_ALWAYS: fireAlways,
  });
}

/** SQL for a relation's name as we write it in messages: schema-qualified and always quoted, as ident() does. */
export const qualifiedNameSql = (oid: string) =>
  `(SELECT '"' || replace(rn.nspname, '"', '""') || '"."' || replace(rc.relname, '"', '""') || '"'
      FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace WHERE rc.oid = ${oid})`;
