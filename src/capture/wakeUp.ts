// How the trigger wakes an idle service, and whether that is safe beside two-phase commit.
// PostgreSQL refuses to PREPARE a transaction that sent NOTIFY, and PREPARE is possible only where
// max_prepared_transactions > 0; so `auto` notifies only where no PREPARE can follow, checked by the
// trigger itself on every change (a restart with another setting changes its choice at once), and
// elsewhere the service polls the journal at `database.idlePollInterval`. docs/security.md explains.
import type pg from 'pg';
import type { WAKE_UP_MODES } from '../config/config.ts';

export type WakeUpMode = (typeof WAKE_UP_MODES)[number];

/** What the trigger actually does on a given server. */
export type EffectiveWakeUp = 'notify' | 'poll';

/** The SQL condition under which the trigger may send NOTIFY, for migrations/capture.sql (qualified: the trigger has no search_path of its own). */
export function notifyCondition(mode: WakeUpMode): string {
  if (mode === 'notify') return 'true';
  if (mode === 'poll') return 'false';
  return "pg_catalog.current_setting('max_prepared_transactions') OPERATOR(pg_catalog.=) '0'";
}

export function effectiveWakeUp(mode: WakeUpMode, maxPreparedTransactions: number): EffectiveWakeUp {
  if (mode === 'auto') return maxPreparedTransactions > 0 ? 'poll' : 'notify';
  return mode;
}

export interface WakeUpReport {
  configured: WakeUpMode;
  effective: EffectiveWakeUp;
  maxPreparedTransactions: number;
  /** One line for an operator: the mode in effect and why. */
  summary: string;
  /** Set when this choice can make an order app's PREPARE TRANSACTION fail. */
  warning?: string;
}

export async function maxPreparedTransactions(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await db.query<{ n: number }>("SELECT current_setting('max_prepared_transactions')::int AS n");
  return rows[0]!.n;
}

/** Reports the wake-up in effect on this server for the configured mode (for `migrate` and `check`). */
export async function reportWakeUp(db: pg.ClientBase | pg.Pool, configured: WakeUpMode, idlePollMs: number): Promise<WakeUpReport> {
  const prepared = await maxPreparedTransactions(db);
  return describeWakeUp(configured, prepared, idlePollMs);
}

export function describeWakeUp(configured: WakeUpMode, prepared: number, idlePollMs: number): WakeUpReport {
  const effective = effectiveWakeUp(configured, prepared);
  const setting = `max_prepared_transactions = ${prepared}`;
  const how =
    effective === 'notify'
      ? 'the trigger sends NOTIFY to an idle service'
      : `the trigger never sends NOTIFY; an idle service polls the journal every ${idlePollMs} ms`;
  const why =
    configured === 'auto'
      ? prepared > 0
        ? `database.wakeUp "auto" and ${setting}: two-phase commit is possible here`
        : `database.wakeUp "auto" and ${setting}: no two-phase commit here`
      : `database.wakeUp "${configured}", ${setting}`;
  const report: WakeUpReport = { configured, effective, maxPreparedTransactions: prepared, summary: `${effective}: ${how} (${why})` };
  if (configured === 'notify' && prepared > 0) {
    report.warning =
      `database.wakeUp is "notify" but ${setting}: an order transaction that ends in PREPARE TRANSACTION ` +
      'fails ("cannot PREPARE a transaction that has executed ... NOTIFY") while the service is idle; use "auto" or "poll" ' +
      'unless no application here uses two-phase commit';
  }
  return report;
}
