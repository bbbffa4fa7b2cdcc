// How the installed triggers fire on the orders table and each of its partitions, and what is
// wrong with that. Catalog only.
import type pg from 'pg';
import {
  ALL_TRIGGERS,
  type CaptureTarget,
  qualifiedNameSql as QUALIFIED,
  qualifiedOrdersTable,
  STATEMENT_TRIGGERS,
  triggerName,
} from './render.ts';

/** pg_trigger.tgenabled: when a trigger fires, by the session's session_replication_role. */
export type TriggerEnabled = 'O' | 'A' | 'R' | 'D';
export type TriggerFiring = 'origin' | 'always' | 'replica' | 'disabled';
const FIRING: Record<TriggerEnabled, TriggerFiring> = { O: 'origin', A: 'always', R: 'replica', D: 'disabled' };

/** One of our triggers on one table, as pg_trigger has it (outbox/installState.ts's TriggerState sums them up). */
export interface InstalledTrigger {
  /** The orders table or one of its partitions, quoted and qualified. */
  table: string;
  trigger: string;
  enabled: TriggerEnabled;
  /** origin: not in replica sessions; always: in every session; replica: only in replica sessions; disabled: never. */
  firing: TriggerFiring;
}

export interface CaptureProblem {
  /** Stable, for the health model (src/health/model.ts). */
  code: 'orders_table_missing' | 'trigger_missing' | 'trigger_disabled' | 'trigger_replica_only' | 'trigger_not_always' | 'trigger_always';
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
  triggers: InstalledTrigger[];
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
  const triggers: InstalledTrigger[] = [];
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
      code: 'trigger_missing',
      level: 'error',
      message: `capture trigger${list.length > 1 ? 's' : ''} ${list.join(', ')} missing on ${where}: its order changes are not captured; run \`order-webhooks migrate\``,
    });
  }
  const byTable = new Map<string, InstalledTrigger[]>();
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
        code: 'trigger_disabled',
        level: 'error',
        message: `capture trigger disabled on ${where} (${list('disabled')}): its order changes are not captured; ${enable}`,
      });
    }
    if (list('replica')) {
      problems.push({
        code: 'trigger_replica_only',
        level: 'error',
        message: `capture trigger fires only in replica sessions on ${where} (${list('replica')}): its order app's changes are not captured; ${enable}`,
      });
    }
    if (expected === 'always' && list('origin')) {
      problems.push({
        code: 'trigger_not_always',
        level: 'error',
        message: `capture trigger does not fire in replica sessions on ${where} (${list('origin')}) although orders.replicaSessions is capture; ${enable}`,
      });
    }
    if (expected === 'origin' && list('always')) {
      problems.push({
        code: 'trigger_always',
        level: 'warn',
        message: `capture trigger fires in replica sessions too on ${where} (${list('always')}) although orders.replicaSessions is skip; ${enable}`,
      });
    }
  }
  const firings = new Set(triggers.map((s) => s.firing));
  const mode = triggers.length === 0 ? 'missing' : firings.size === 1 ? triggers[0]!.firing : 'mixed';
  if (rows.length === 0) {
    problems.push({
      code: 'orders_table_missing',
      level: 'error',
      message: `orders table ${table} does not exist: no order change is captured`,
    });
  }
  return { table, expected, mode, triggers, problems };
}
