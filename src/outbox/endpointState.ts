// Each endpoint's state (up, down, paused) in the endpoint_state table (migration 10), shared by
// every instance: the dispatcher's gate. Reads it every second (a few rows), writes the breaker's
// decisions (src/delivery/breaker.ts) when outcomes can change them, and hands out the probe of a
// down endpoint to one instance at a time with a conditional UPDATE. Writes never delay a send:
// outcomes are queued and written in the background, several at once.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { type Db, describeDbError, ident } from '../db.ts';
import { afterOutcomes, type BreakerConfig, type BreakerOutcome, type BreakerState, mayChange, UP } from '../delivery/breaker.ts';
import type { EndpointGate, EndpointStatus } from '../delivery/gate.ts';
import type { Logger } from '../log.ts';

interface Row {
  endpoint: string;
  state: 'up' | 'down';
  failures: number;
  opened_at: Date | null;
  next_probe_at: Date | null;
  probe_interval_ms: number | null;
  paused: boolean;
  probe_by: string | null;
  probe_until: Date | null;
}

interface Known {
  breaker: BreakerState;
  paused: boolean;
  /** Until when another instance holds the probe (as far as we know). */
  probeHeldUntil: number;
}

const REFRESH_MS = 1000;

export class EndpointStates implements EndpointGate {
  readonly instance = `${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly known = new Map<string, Known>();
  private readonly queued = new Map<string, BreakerOutcome[]>();
  private writing: Promise<void> | undefined;
  private readonly listeners: ((endpoint: string, status: EndpointStatus) => void)[] = [];
  private refreshTimer: NodeJS.Timeout | undefined;
  private readonly probeTimers = new Map<string, NodeJS.Timeout>();
  private readonly schema: string;
  private stopped = false;

  constructor(
    private readonly pool: pg.Pool,
    schemaName: string,
    private readonly log: Logger,
    /** Each endpoint's breaker settings; `false`: the breaker is off (pause still works). */
    private readonly breakers: ReadonlyMap<string, BreakerConfig | false>,
    private readonly refreshMs = REFRESH_MS,
  ) {
    this.schema = ident(schemaName);
  }

  /** Called when an endpoint's status changes, or its probe comes due. */
  onChange(listener: (endpoint: string, status: EndpointStatus) => void): void {
    this.listeners.push(listener);
  }

  /** Reads the state once (a restart keeps an open breaker), then every second. */
  async start(): Promise<void> {
    await this.refresh();
    const tick = () => {
      this.refreshTimer = setTimeout(() => {
        void this.refresh()
          .catch((error) => this.log.warn({ error: describeDbError(error) }, 'reading endpoint states failed; will retry'))
          .finally(() => {
            if (!this.stopped) tick();
          });
      }, this.refreshMs);
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.refreshTimer);
    for (const timer of this.probeTimers.values()) clearTimeout(timer);
    await this.writing;
  }

  status(endpoint: string): EndpointStatus {
    const known = this.known.get(endpoint);
    if (!known) return 'up';
    return known.paused ? 'paused' : known.breaker.state;
  }

  probeDue(endpoint: string): boolean {
    const known = this.known.get(endpoint);
    if (!known || known.paused || known.breaker.state !== 'down') return false;
    const now = Date.now();
    return (known.breaker.nextProbeAt?.getTime() ?? 0) <= now && known.probeHeldUntil <= now;
  }

  async claimProbe(endpoint: string, leaseMs: number): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE ${this.schema}.endpoint_state SET probe_by = $2, probe_until = now() + $3 * interval '1 ms'
        WHERE endpoint = $1 AND state = 'down' AND NOT paused AND next_probe_at <= now()
          AND (probe_until IS NULL OR probe_until < now())`,
      [endpoint, this.instance, leaseMs],
    );
    const known = this.known.get(endpoint);
    // Taken by another instance (or not due after all): do not ask again before the next read.
    if (!rowCount && known) known.probeHeldUntil = Date.now() + this.refreshMs;
    return (rowCount ?? 0) > 0;
  }

  async releaseProbe(endpoint: string): Promise<void> {
    await this.pool
      .query(`UPDATE ${this.schema}.endpoint_state SET probe_by = NULL, probe_until = NULL WHERE endpoint = $1 AND probe_by = $2`, [
        endpoint,
        this.instance,
      ])
      .catch((error) =>
        this.log.warn({ error: describeDbError(error), endpoint }, 'releasing a probe failed; it is free when its lease ends'),
      );
  }

  observe(endpoint: string, outcome: BreakerOutcome): void {
    if (this.breakers.get(endpoint) === false || this.stopped) return;
    const known = this.known.get(endpoint);
    if (!mayChange(known?.breaker ?? UP, [outcome])) return;
    this.queued.set(endpoint, [...(this.queued.get(endpoint) ?? []), outcome]);
    this.writing ??= this.writeQueued().finally(() => {
      this.writing = undefined;
    });
  }

  /** Reads every endpoint's row; tells listeners of what changed and of probes coming due. */
  async refresh(): Promise<void> {
    const { rows } = await this.pool.query<Row>(
      `SELECT endpoint, state, failures, opened_at, next_probe_at, probe_interval_ms, paused, probe_by, probe_until
         FROM ${this.schema}.endpoint_state`,
    );
    const seen = new Set<string>();
    for (const row of rows) {
      seen.add(row.endpoint);
      this.learn(row);
    }
    for (const endpoint of [...this.known.keys()]) {
      if (seen.has(endpoint)) continue;
      const before = this.status(endpoint);
      this.known.delete(endpoint);
      if (before !== 'up') this.tell(endpoint);
    }
  }

  private learn(row: Row): void {
    const before = this.status(row.endpoint);
    const held = row.probe_by !== null && row.probe_by !== this.instance && row.probe_until ? row.probe_until.getTime() : 0;
    this.known.set(row.endpoint, {
      breaker: {
        state: row.state,
        failures: row.failures,
        openedAt: row.opened_at,
        nextProbeAt: row.next_probe_at,
        probeIntervalMs: row.probe_interval_ms,
      },
      paused: row.paused,
      probeHeldUntil: held,
    });
    const after = this.status(row.endpoint);
    if (after !== before) {
      this.log[after === 'up' ? 'info' : 'warn'](
        { endpoint: row.endpoint, status: after, was: before },
        `endpoint ${row.endpoint} is ${after}`,
      );
      this.tell(row.endpoint);
    }
    if (after === 'down') this.wakeForProbe(row.endpoint);
  }

  /** A probe due now wakes the dispatcher; one due before the next read gets a timer of its own. */
  private wakeForProbe(endpoint: string): void {
    if (this.probeDue(endpoint)) {
      this.tell(endpoint);
      return;
    }
    const at = this.known.get(endpoint)?.breaker.nextProbeAt?.getTime();
    if (at === undefined || at - Date.now() > this.refreshMs || this.probeTimers.has(endpoint)) return;
    const timer = setTimeout(
      () => {
        this.probeTimers.delete(endpoint);
        if (this.probeDue(endpoint)) this.tell(endpoint);
      },
      Math.max(0, at - Date.now()) + 5,
    );
    timer.unref();
    this.probeTimers.set(endpoint, timer);
  }

  private tell(endpoint: string): void {
    const status = this.status(endpoint);
    for (const listener of this.listeners) {
      try {
        listener(endpoint, status);
      } catch (error) {
        this.log.warn({ error: (error as Error).message }, 'an endpoint state listener failed');
      }
    }
  }

  private async writeQueued(): Promise<void> {
    while (this.queued.size > 0) {
      const [endpoint, outcomes] = this.queued.entries().next().value as [string, BreakerOutcome[]];
      this.queued.delete(endpoint);
      const config = this.breakers.get(endpoint);
      if (!config) continue;
      try {
        await this.write(endpoint, outcomes, config);
      } catch (error) {
        this.log.warn(
          { error: describeDbError(error), endpoint, outcomes: outcomes.length },
          'recording outcomes for the circuit breaker failed; they are not counted',
        );
      }
    }
  }

  /** Applies outcomes to the endpoint's row under its lock: instances writing at once each count. */
  private async write(endpoint: string, outcomes: BreakerOutcome[], config: BreakerConfig): Promise<void> {
    const client = await this.pool.connect();
    let row: Row;
    try {
      await client.query('BEGIN');
      // The upsert locks the row (creating it if need be) and returns it in one round trip.
      const { rows } = await client.query<Row>(
        `INSERT INTO ${this.schema}.endpoint_state AS s (endpoint) VALUES ($1)
         ON CONFLICT (endpoint) DO UPDATE SET endpoint = s.endpoint
         RETURNING endpoint, state, failures, opened_at, next_probe_at, probe_interval_ms, paused, probe_by, probe_until`,
        [endpoint],
      );
      const current = rows[0]!;
      const before: BreakerState = {
        state: current.state,
        failures: current.failures,
        openedAt: current.opened_at,
        nextProbeAt: current.next_probe_at,
        probeIntervalMs: current.probe_interval_ms,
      };
      const after = afterOutcomes(before, outcomes, config, new Date());
      const probed = outcomes.some((o) => o.probe);
      const { rows: written } = await client.query<Row>(
        `UPDATE ${this.schema}.endpoint_state
            SET state = $2, failures = $3, opened_at = $4, next_probe_at = $5, probe_interval_ms = $6, updated_at = now(),
                probe_by = CASE WHEN $7 AND probe_by = $8 OR $2 = 'up' THEN NULL ELSE probe_by END,
                probe_until = CASE WHEN $7 AND probe_by = $8 OR $2 = 'up' THEN NULL ELSE probe_until END
          WHERE endpoint = $1
         RETURNING endpoint, state, failures, opened_at, next_probe_at, probe_interval_ms, paused, probe_by, probe_until`,
        [endpoint, after.state, after.failures, after.openedAt, after.nextProbeAt, after.probeIntervalMs, probed, this.instance],
      );
      await client.query('COMMIT');
      row = written[0]!;
      if (before.state === 'up' && after.state === 'down') {
        this.log.error(
          { endpoint, failures: after.failures, probeEvery: `${after.probeIntervalMs} ms`, lastError: outcomes.at(-1)?.errorKind },
          `endpoint ${endpoint} is down (circuit breaker open): ${after.failures} failures in a row; nothing is sent to it but one probe per interval`,
        );
      } else if (before.state === 'down' && after.state === 'up') {
        this.log.info({ endpoint }, `endpoint ${endpoint} is up again (a probe succeeded): its waiting events go out now`);
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
    this.learn(row);
  }
}

export interface EndpointReport {
  endpoint: string;
  status: EndpointStatus;
  /** Unwell failures in a row. */
  failures: number;
  /** Down since. */
  openedAt: Date | null;
  nextProbeAt: Date | null;
  pausedAt: Date | null;
}

/**
 * Each endpoint's status as every surface shows it (status, the page, /metrics), from the
 * endpoint_states view: the configured endpoints (up when they have no row) and any other with a row.
 */
export async function readEndpointStates(db: Db, schemaName: string, configured: readonly string[]): Promise<EndpointReport[]> {
  const { rows } = await db.query<EndpointReport>(
    `SELECT c.endpoint, coalesce(s.status, 'up') AS status, coalesce(s.failures, 0) AS failures,
            s.opened_at AS "openedAt", s.next_probe_at AS "nextProbeAt", s.paused_at AS "pausedAt"
       FROM (SELECT unnest($1::text[]) AS endpoint UNION SELECT endpoint FROM ${ident(schemaName)}.endpoint_states) c
       LEFT JOIN ${ident(schemaName)}.endpoint_states s USING (endpoint)
      ORDER BY c.endpoint <> 'default', c.endpoint`,
    [configured],
  );
  return rows;
}

/** Pauses or resumes an endpoint through the SQL functions an operator can call from psql; returns its status. */
export async function setPaused(db: Db, schemaName: string, endpoint: string, paused: boolean): Promise<EndpointStatus> {
  const fn = paused ? 'pause_endpoint' : 'resume_endpoint';
  const { rows } = await db.query<{ status: EndpointStatus }>(`SELECT ${ident(schemaName)}.${fn}($1) AS status`, [endpoint]);
  return rows[0]!.status;
}
