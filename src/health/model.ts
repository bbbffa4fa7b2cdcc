// Whether the service is healthy, decided once: what was observed (the facts) becomes a list of
// problems, each with a stable code, a level and one line for a person. Every surface asks this
// model and shows the problems of its scope: `start` refuses on set-up problems, `check` shows
// exactly those and how capture runs, `status` everything, `/readyz` turns 503 on runtime errors,
// the page's Capture card shows its own. Pure: no I/O; src/health/observe.ts gathers the facts.
import type { CaptureProblem } from '../capture/state.ts';
import type { ClaimFailures } from '../delivery/claimFailures.ts';
import { type AppError, CaptureError, PoolerError, SchemaError } from '../errors.ts';

/** Claims failing "for a while": this many in a row, the first this long ago (both). */
export const CLAIMS_FAILING_IN_A_ROW = 3;
export const CLAIMS_FAILING_FOR_MS = 10_000;

/**
 * What was observed; a fact left out was not observed and makes no problem. The set-up facts are
 * what `start` checks before it runs, in its order.
 */
export interface Facts {
  /** The pooler probe: null when each connection is a session of its own, else why not. */
  pooler?: string | null;
  /** The privileges the connected role lacks on our schema to run `start`. */
  privileges?: { role: string; schema: string; missing: string[] };
  /** Our schema's version (null: not installed) and the one this release needs. */
  schema?: { name: string; version: number | null; latest: number };
  /** Damage to our schema done by hand (src/schema/inspect.ts), one line each. */
  damage?: { schema: string; lines: string[] };
  /** null when the orders table is one we can capture, else why not (src/capture/ordersTable.ts). */
  ordersTable?: string | null;
  /** The `capture` row: whether the installed trigger is the one this config renders. */
  captureRow?: { table: string; state: 'missing' | 'other' | 'current' };
  /** How the triggers fire on the orders table and each partition (src/capture/state.ts). */
  triggers?: CaptureProblem[];
  /** Set when the wake-up mode can make an order app's PREPARE TRANSACTION fail (src/capture/wakeUp.ts). */
  wakeUpWarning?: string | null;
  /** webHook.enabled. false: nothing listens or claims, by choice. */
  enabled?: boolean;
  /** null when the database answered, else its error. */
  database?: string | null;
  /** Whether the LISTEN connection is subscribed. */
  listening?: boolean;
  /** The dispatcher's failed claims in a row. */
  claims?: ClaimFailures;
  /** Failed events in the outbox. */
  failed?: number;
  /** Each endpoint that is not up (endpoint_states): its circuit breaker open, or paused by an operator. */
  endpoints?: { endpoint: string; status: 'up' | 'down' | 'paused'; failures: number; openedAt: Date | null; nextProbeAt: Date | null }[];
  /** Endpoints no longer in the config whose events still wait in the outbox, unsent. */
  removedEndpoints?: { name: string; pending: number }[];
  /** The delivery lag and the most it may be (`limit` names where that comes from, e.g. `--max-lag PT5M`). */
  lag?: { seconds: number; maxSeconds: number; limit: string };
  /** The time the facts were read at (epoch ms), for how long claims have failed. */
  now?: number;
}

export type ProblemCode =
  // set-up: `start` refuses
  | 'pooler_unsupported'
  | 'privileges_missing'
  | 'schema_not_installed'
  | 'schema_outdated'
  | 'schema_newer'
  | 'schema_damaged'
  | 'orders_table_invalid'
  | 'capture_not_installed'
  | 'capture_other_config'
  // capture as it runs: order changes not captured (or more than configured)
  | CaptureProblem['code']
  | 'wake_up_unsafe'
  // runtime: the running service
  | 'webhooks_disabled'
  | 'database_unreachable'
  | 'listener_down'
  | 'claims_failing'
  // backlog
  | 'events_failed'
  | 'endpoint_removed'
  | 'lag_over_max'
  | 'endpoint_down'
  | 'endpoint_paused';

export interface Problem {
  code: ProblemCode;
  level: 'error' | 'warn';
  line: string;
}

export type Kind = 'setup' | 'capture' | 'runtime' | 'backlog';

const KIND: Record<ProblemCode, Kind> = {
  pooler_unsupported: 'setup',
  privileges_missing: 'setup',
  schema_not_installed: 'setup',
  schema_outdated: 'setup',
  schema_newer: 'setup',
  schema_damaged: 'setup',
  orders_table_invalid: 'setup',
  capture_not_installed: 'setup',
  capture_other_config: 'setup',
  orders_table_missing: 'capture',
  trigger_missing: 'capture',
  trigger_disabled: 'capture',
  trigger_replica_only: 'capture',
  trigger_not_always: 'capture',
  trigger_always: 'capture',
  wake_up_unsafe: 'capture',
  webhooks_disabled: 'runtime',
  database_unreachable: 'runtime',
  listener_down: 'runtime',
  claims_failing: 'runtime',
  events_failed: 'backlog',
  endpoint_removed: 'backlog',
  lag_over_max: 'backlog',
  endpoint_down: 'backlog',
  endpoint_paused: 'backlog',
};

/** Which problems each surface shows. */
export const SCOPES = {
  /** `start` refuses to run on any of these. */
  start: ['setup'],
  /** `check`: fails exactly where `start` would, and on capture that does not run as configured. */
  check: ['setup', 'capture'],
  /** `status`: everything it can see (a command sees no running service's runtime). */
  status: ['setup', 'capture', 'runtime', 'backlog'],
  /** `/readyz`: 503 on a runtime error. */
  ready: ['runtime'],
  /** The page's Capture card (its other cards show the backlog). */
  page: ['setup', 'capture', 'runtime'],
} as const satisfies Record<string, readonly Kind[]>;

export type Scope = keyof typeof SCOPES;

export function kindOf(code: ProblemCode): Kind {
  return KIND[code];
}

/** The problems of one surface. */
export function inScope(scope: Scope, problems: readonly Problem[]): Problem[] {
  const kinds: readonly Kind[] = SCOPES[scope];
  return problems.filter((p) => kinds.includes(KIND[p.code]));
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** The problems the facts show: set-up first, in the order `start` checks, then capture, runtime, backlog. */
export function assess(facts: Facts): Problem[] {
  const problems: Problem[] = [];
  const error = (code: ProblemCode, line: string) => problems.push({ code, level: 'error', line });
  if (facts.pooler) error('pooler_unsupported', facts.pooler);
  const privileges = facts.privileges;
  if (privileges && privileges.missing.length > 0) {
    const { role, schema } = privileges;
    error(
      'privileges_missing',
      `the role ${quote(role)} lacks ${privileges.missing.join(', ')}: have the owner of schema ${quote(schema)} run what \`order-webhooks migrate --print-grants ${role}\` prints`,
    );
  }
  const schema = facts.schema;
  if (schema) {
    const name = quote(schema.name);
    if (schema.version === null) error('schema_not_installed', `schema ${name} is not installed: run \`order-webhooks migrate\` first`);
    else if (schema.version > schema.latest) {
      error(
        'schema_newer',
        `schema ${name} is at version ${schema.version}, newer than this release knows (${schema.latest}): run the release that migrated it`,
      );
    } else if (schema.version < schema.latest) {
      error(
        'schema_outdated',
        `schema ${name} is at version ${schema.version}, this release needs ${schema.latest}: run \`order-webhooks migrate\``,
      );
    }
  }
  // Damage is judged against this release's schema: an older one lacks what later migrations add.
  const current = !schema || schema.version === schema.latest;
  const damage = facts.damage;
  if (current && damage && damage.lines.length > 0) {
    error(
      'schema_damaged',
      `schema ${quote(damage.schema)} is damaged: ${damage.lines.join('; ')} (docs/security.md, "If our schema is damaged")`,
    );
  }
  if (facts.ordersTable) error('orders_table_invalid', facts.ordersTable);
  const row = facts.captureRow;
  if (row?.state === 'missing')
    error('capture_not_installed', `the capture trigger is not installed on ${row.table}: run \`order-webhooks migrate\` first`);
  if (row?.state === 'other') {
    error(
      'capture_other_config',
      `the capture trigger on ${row.table} was installed for another config or release: run \`order-webhooks migrate\` to update it`,
    );
  }

  for (const p of facts.triggers ?? []) {
    // A table that does not exist is said once, by the set-up check.
    if (p.code === 'orders_table_missing' && facts.ordersTable) continue;
    problems.push({ code: p.code, level: p.level, line: p.message });
  }
  if (facts.wakeUpWarning) problems.push({ code: 'wake_up_unsafe', level: 'warn', line: facts.wakeUpWarning });

  if (facts.enabled === false) {
    problems.push({
      code: 'webhooks_disabled',
      level: 'warn',
      line: 'webhooks are disabled (webHook.enabled is false): nothing is sent, changes wait in the journal',
    });
  }
  if (facts.database) error('database_unreachable', `database unreachable: ${facts.database}`);
  // Idle by choice, nothing listens or claims.
  if (facts.enabled !== false) {
    if (facts.listening === false) error('listener_down', 'listener not subscribed: the LISTEN connection is down, reconnecting');
    const claims = facts.claims;
    const now = facts.now ?? Date.now();
    if (claims?.since != null && claims.inARow >= CLAIMS_FAILING_IN_A_ROW && now - claims.since >= CLAIMS_FAILING_FOR_MS) {
      error('claims_failing', `claims failing: ${claims.inARow} in a row since ${new Date(claims.since).toISOString()}: ${claims.error}`);
    }
  }

  for (const e of facts.endpoints ?? []) {
    if (e.status === 'down') {
      error(
        'endpoint_down',
        `endpoint ${e.endpoint} is down since ${e.openedAt?.toISOString()} (circuit breaker open after ${e.failures} failures in a row): its events wait, one probe per interval, next at ${e.nextProbeAt?.toISOString()}`,
      );
    }
    if (e.status === 'paused') {
      problems.push({
        code: 'endpoint_paused',
        level: 'warn',
        line: `endpoint ${e.endpoint} is paused: nothing is sent to it, its events wait (order-webhooks resume --endpoint ${e.endpoint})`,
      });
    }
  }
  if (facts.failed) error('events_failed', `${facts.failed} failed event(s): see \`order-webhooks outbox list --status failed\``);
  for (const e of facts.removedEndpoints ?? []) if (e.pending > 0) error('endpoint_removed', removedEndpointLine(e.name, e.pending));
  const lag = facts.lag;
  if (lag && lag.seconds > lag.maxSeconds) error('lag_over_max', `lag ${formatAge(lag.seconds)} is over ${lag.limit}`);
  return problems;
}

/** The line for an endpoint removed from the config whose pending events still wait, unsent. */
export function removedEndpointLine(name: string, pending: number): string {
  return `endpoint ${name} is not in the config: its ${pending} pending event(s) are not sent; \`order-webhooks purge --endpoint ${name}\` deletes them`;
}

/** What `start` refuses with: the first set-up problem, as the error its code belongs to (exit 2). */
export function startRefusal(problems: readonly Problem[]): AppError | undefined {
  const first = inScope('start', problems)[0];
  if (!first) return undefined;
  if (first.code === 'pooler_unsupported') return new PoolerError(first.line);
  if (first.code === 'schema_not_installed' || first.code === 'schema_outdated' || first.code === 'schema_newer') {
    return new SchemaError(first.line);
  }
  return new CaptureError(first.line);
}

/** `/readyz`: ready unless a runtime error; the reason is that error's line, else a warning's, else `fallback`. */
export function readiness(problems: readonly Problem[], fallback: string): { ready: boolean; reason: string } {
  const mine = inScope('ready', problems);
  const error = mine.find((p) => p.level === 'error');
  if (error) return { ready: false, reason: error.line };
  return { ready: true, reason: mine[0]?.line ?? fallback };
}

/** An age for a person: `42s`, `3m 5s`, `1h 0m`, `2d 3h`. */
export function formatAge(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
