// Reads the set-up and capture facts of the health model from the database, in one place: `start`,
// `check`, `status` and the page all observe through here, so they judge the same facts.
import { readInstalledCapture } from '../capture/install.ts';
import { checkOrdersTable } from '../capture/ordersTable.ts';
import { ALL_TRIGGERS, type CaptureTarget, renderCapture } from '../capture/render.ts';
import { captureTriggerStatus } from '../capture/state.ts';
import { reportWakeUp, type WakeUpReport } from '../capture/wakeUp.ts';
import type { Db } from '../db.ts';
import { CaptureError, PoolerError } from '../errors.ts';
import { describeTrigger, type SchemaState, schemaState, type TriggerState } from '../outbox/installState.ts';
import { inspectSchema, missingServicePrivileges } from '../schema/inspect.ts';
import { checkSessionConnections } from '../schema/pooler.ts';
import type { Facts } from './model.ts';

export interface ObserveOptions {
  /** Our schema, the orders table and database.wakeUp, as `start` renders the trigger. */
  target: CaptureTarget;
  /** database.idlePollInterval, for the wake-up summary. */
  idlePollMs: number;
  /** database.url: given, the pooler probe runs too (it opens two connections of its own). */
  url?: string;
}

export interface Observed {
  facts: Facts;
  /** Undefined when the connected role may not read it. */
  schema: SchemaState | undefined;
  trigger: TriggerState;
  wakeUp: WakeUpReport;
}

/** Postgres' codes for a table or schema that is not there, and for a privilege that is missing. */
const NOT_THERE = new Set(['42P01', '3F000']);
const DENIED = '42501';

/** What `read` finds, or undefined when it is not there (a schema not installed) or not ours to read. */
async function readable<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === DENIED || (code !== undefined && NOT_THERE.has(code))) return undefined;
    throw error;
  }
}

/** The line of a set-up check that throws `kind`, or null when it passes. */
async function lineOf(kind: typeof CaptureError | typeof PoolerError, check: () => Promise<void>): Promise<string | null> {
  try {
    await check();
    return null;
  } catch (error) {
    if (error instanceof kind) return error.message;
    throw error;
  }
}

/** The pooler probe: null when each connection is a session of its own, else why not. */
export function observePooler(url: string): Promise<string | null> {
  return lineOf(PoolerError, () => checkSessionConnections(url));
}

/** The set-up and capture facts, in the order `start` checks them. A database error other than "not there" or "denied" is thrown. */
export async function observeInstall(db: Db, options: ObserveOptions): Promise<Observed> {
  const { target } = options;
  const name = target.schema;
  const pooler = options.url === undefined ? undefined : await observePooler(options.url);
  const { rows } = await db.query<{ role: string }>('SELECT current_user AS role');
  const privileges = { role: rows[0]!.role, schema: name, missing: await missingServicePrivileges(db, name) };
  const schema = await readable(() => schemaState(db, name));
  // Damage reads the catalogs only; a schema that is not there is said once, as not installed.
  const damage = schema?.version === null ? [] : await inspectSchema(db, name);
  const ordersTable = await lineOf(CaptureError, () => checkOrdersTable(db, target));
  // { row: undefined }: read, and no trigger installed; undefined: not read.
  const installed = schema?.version === null ? undefined : await readable(async () => ({ row: await readInstalledCapture(db, name) }));
  const row = installed?.row;
  const capture = await captureTriggerStatus(db, target);
  const wakeUp = await reportWakeUp(db, target.wakeUp ?? 'auto', options.idlePollMs);
  const trigger = describeTrigger(target, capture, row, damage);
  const facts: Facts = {
    pooler,
    privileges,
    schema: schema && { name, version: schema.version, latest: schema.latest },
    damage: { schema: name, lines: damage },
    ordersTable,
    triggers: capture.problems,
    wakeUpWarning: wakeUp.warning ?? null,
  };
  if (installed) {
    // As `start` has always judged it: the definition this config renders, with every trigger on its table.
    const current = row?.definition === renderCapture(target) && row.triggers === ALL_TRIGGERS.length;
    facts.captureRow = !row?.triggers
      ? { table: capture.table, state: 'missing' }
      : { table: row.ordersTable, state: current ? 'current' : 'other' };
  }
  return { facts, schema, trigger, wakeUp };
}
