// Whether our schema and the capture trigger are installed and current, as the operator surfaces ask.
import { LATEST_VERSION, readSchemaVersion } from '../schema/migrate.ts';
import type { InstalledCapture } from '../capture/install.ts';
import { ALL_TRIGGERS, type CaptureTarget, qualifiedOrdersTable, renderCapture } from '../capture/render.ts';
import type { CaptureStatus } from '../capture/state.ts';
import type { Db } from '../db.ts';

export interface SchemaState {
  name: string;
  /** null: our schema is not installed. */
  version: number | null;
  latest: number;
  current: boolean;
}

export async function schemaState(db: Db, schema: string): Promise<SchemaState> {
  const latest = LATEST_VERSION();
  const version = await readSchemaVersion(db, schema);
  return { name: schema, version, latest, current: version === latest };
}

export type TriggerCondition = 'enabled' | 'disabled' | 'missing' | 'partly installed';

export interface TriggerState {
  table: string;
  /** Every trigger this release installs is on the orders table. */
  installed: boolean;
  /** They fire for the order app's sessions (`ALTER TABLE … DISABLE TRIGGER` turns this off). */
  enabled: boolean;
  /** Installed as this config renders it (`migrate` updates it otherwise). */
  matchesConfig: boolean;
  condition: TriggerCondition;
  /** How the triggers fire: `origin` (not in replica sessions), `always`, or `mixed`, `disabled`, `missing`. */
  mode: CaptureStatus['mode'];
  /** What orders.replicaSessions asks for. */
  expectedMode: CaptureStatus['expected'];
  /** One line each, from the table and every partition (src/capture/state.ts captureTriggerStatus). */
  problems: string[];
  /** Damage to our own schema done by hand (src/schema/inspect.ts). */
  damage: string[];
}

/** Whether the capture trigger is in place on the orders table and its partitions, firing, and as this config wants it. */
export function describeTrigger(
  target: CaptureTarget,
  capture: CaptureStatus,
  installedRow: InstalledCapture | undefined,
  damage: string[],
): TriggerState {
  const table = qualifiedOrdersTable(target);
  // The named table's own triggers (partitions are in capture.problems).
  const own = capture.triggers.filter((t) => t.table === table);
  const installed = own.length === ALL_TRIGGERS.length;
  const enabled = installed && !capture.problems.some((p) => p.level === 'error');
  const condition: TriggerCondition = own.length === 0 ? 'missing' : !installed ? 'partly installed' : enabled ? 'enabled' : 'disabled';
  return {
    table,
    installed,
    enabled,
    matchesConfig: installed && installedRow?.ordersTable === table && installedRow.definition === renderCapture(target),
    condition,
    mode: capture.mode,
    expectedMode: capture.expected,
    problems: capture.problems.map((p) => p.message),
    damage,
  };
}
