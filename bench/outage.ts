// W5 (issues 15, 23): a receiver outage. The receiver answers 503 while the order app keeps
// committing, then 200; every 30 s of the outage we note what PostgreSQL pays (CPU of the service's
// backends, read from /proc), the service's CPU and RSS, the claim statement's time (EXPLAIN ANALYZE
// of the service's own statement, rolled back) and the events waiting; once the circuit breaker is
// open, how many requests still reach the dead receiver; after it, how long until a probe finds the
// receiver back, and how fast and how correctly the backlog drains. W5b: 200,000 changes over 2,000 orders while the
// receiver is down, and the claim's time at the end against its time at 2,000 waiting events.
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { Outbox } from '../src/outbox/outbox.ts';
import { now } from './clock.ts';
import { type Panel, plotSvg } from './plot.ts';
import type { ReceiverProcess, ServiceProcess } from './processes.ts';

export const OUTAGE_SECONDS = Number(process.env.BENCH_W5_SECONDS ?? 180);
const WINDOW_SECONDS = 30;
const RATE = 150;
const W5_FIRST_ORDER = 90_001;
const W5_ORDERS = 1_000;
const W5B_FIRST_ORDER = 92_001;
const W5B_ORDERS = 2_000;
const W5B_CHANGES_PER_ORDER = 100;
/** What the dispatcher asks for at most (2 × concurrency 32), and the default lease. */
const CLAIM_LIMIT = 64;
const LEASE_MS = 60_000;
const SCHEMA = 'order_webhooks';
/** 1 s, 2 s, 4 s, then 5 s long enough to outlast the outage and the drain. */
export const W5_RETRY_DELAYS = ['PT1S', 'PT2S', 'PT4S', ...Array.from({ length: 120 }, () => 'PT5S')];

export interface OutageContext {
  dbUrl: string;
  db: pg.Client;
  receiver: ReceiverProcess;
  service: ServiceProcess;
  log: (message: string) => void;
  /** Journal rows plus pending outbox events. */
  backlog: () => Promise<number>;
}

interface Sample {
  /** Seconds since the outage began. */
  t: number;
  /** CPU seconds of the service's backends so far. */
  pgCpu: number;
  serviceCpu: number;
  rssMb: number;
  accepted: number;
  rejected: number;
  waiting: number;
  /** Service backends running the outbox claim at this sample. */
  claiming: number;
  /** The endpoint's status (endpoint_states): up, down or paused. */
  endpoint: string;
}

/** Samples the service's PostgreSQL backends, the service and the receiver once a second. */
class Sampler {
  readonly samples: Sample[] = [];
  private readonly cpuOf = new Map<number, number>();
  private pgCpu = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly client: pg.Client,
    private readonly ctx: OutageContext,
    private readonly start: number,
    private readonly waitingEveryMs = 1000,
  ) {}

  async begin(): Promise<void> {
    for (const b of await this.backends()) this.cpuOf.set(b.pid, cpuSecondsOrNull(b.pid) ?? 0);
    let lastWaiting = -Infinity;
    let waiting = 0;
    this.loop = (async () => {
      while (!this.stopped) {
        const at = Date.now();
        const backends = await this.backends();
        for (const { pid } of backends) {
          const cpu = cpuSecondsOrNull(pid);
          if (cpu === null) continue;
          // A backend first seen now is a new connection: all of its CPU is ours.
          this.pgCpu += cpu - (this.cpuOf.get(pid) ?? 0);
          this.cpuOf.set(pid, cpu);
        }
        if (at - lastWaiting >= this.waitingEveryMs) {
          waiting = await this.ctx.backlog();
          lastWaiting = at;
        }
        const { accepted, rejected } = await this.ctx.receiver.counts();
        const { rows: state } = await this.client.query<{ status: string }>(
          `SELECT coalesce((SELECT status FROM ${SCHEMA}.endpoint_states WHERE endpoint = 'default'), 'up') AS status`,
        );
        this.samples.push({
          t: (now() - this.start) / 1000,
          pgCpu: this.pgCpu,
          serviceCpu: this.ctx.service.cpuSeconds(),
          rssMb: this.ctx.service.rssMb(),
          accepted,
          rejected,
          waiting,
          claiming: backends.filter((b) => b.claiming).length,
          endpoint: state[0]!.status,
        });
        await sleep(Math.max(0, 1000 - (Date.now() - at)));
      }
    })();
  }

  async end(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** The last sample at or before `t`. */
  at(t: number): Sample {
    let found = this.samples[0]!;
    for (const s of this.samples) if (s.t <= t + 0.5) found = s;
    return found;
  }

  private async backends(): Promise<{ pid: number; claiming: boolean }[]> {
    const { rows } = await this.client.query<{ pid: number; claiming: boolean }>(
      `SELECT pid, (state = 'active' AND query LIKE 'WITH due AS%') AS claiming FROM pg_stat_activity
        WHERE application_name LIKE 'order-webhooks%' AND datname = current_database()`,
    );
    return rows;
  }
}

function cpuSecondsOrNull(pid: number): number | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null; // the backend has exited since pg_stat_activity listed it
  }
}

/** CPU seconds of the service's PostgreSQL backends now open (W3's yardstick: they open with the service). */
export async function serviceBackendsCpuSeconds(client: pg.Client): Promise<number> {
  const { rows } = await client.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'order-webhooks%' AND datname = current_database()`,
  );
  return rows.reduce((sum, { pid }) => sum + (cpuSecondsOrNull(pid) ?? 0), 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface ClaimTime {
  /** Planning plus execution, median of the runs, ms (one run can meet a checkpoint or a neighbour's burst). */
  ms: number;
  /** Buffers (shared hit + read) the claim touched, mean of the runs. */
  buffers: number;
  /** Rows the claim would have claimed (last run). */
  rows: number;
}

/**
 * The service's outbox claim, EXPLAIN ANALYZEd in a transaction that is rolled back, on a
 * connection with the service's settings: what one claim costs now. Its row locks last only the
 * statement, so the service's claims merely skip those rows meanwhile.
 */
async function claimTime(client: pg.Client, runs = 5): Promise<ClaimTime> {
  const sql = new Outbox(undefined as never, SCHEMA).claimStatement;
  const ms: number[] = [];
  let buffers = 0;
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    await client.query('BEGIN');
    try {
      const { rows: out } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, [CLAIM_LIMIT, LEASE_MS, 'default']);
      const plan = (out[0] as any)['QUERY PLAN'][0];
      ms.push(plan['Planning Time'] + plan['Execution Time']);
      buffers += plan.Plan['Shared Hit Blocks'] + plan.Plan['Shared Read Blocks'];
      rows = plan.Plan['Actual Rows'];
    } finally {
      await client.query('ROLLBACK');
    }
  }
  if (process.env.BENCH_W5_PLAN) {
    // For a profile: the text plan of one more run, on stderr.
    await client.query('BEGIN');
    try {
      const { rows: text } = await client.query(`EXPLAIN (ANALYZE, BUFFERS) ${sql}`, [CLAIM_LIMIT, LEASE_MS, 'default']);
      process.stderr.write(`${text.map((r) => r['QUERY PLAN']).join('\n')}\n`);
    } finally {
      await client.query('ROLLBACK');
    }
  }
  ms.sort((a, b) => a - b);
  return { ms: ms[Math.floor(runs / 2)]!, buffers: buffers / runs, rows };
}

async function explainClient(dbUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: dbUrl, application_name: 'bench explain', options: '-c enable_seqscan=off -c jit=off' });
  await client.connect();
  return client;
}

export interface OutageWindow {
  from: number;
  to: number;
  /** PostgreSQL CPU of the service's backends, % of one core. */
  pgCpuPct: number;
  failedAttempts: number;
  /** PostgreSQL CPU ms per failed attempt. */
  pgMsPerRetry: number;
  serviceCpuPct: number;
  /** Service CPU ms per failed attempt. */
  serviceMsPerRetry: number;
  rssMb: number;
  claim: ClaimTime;
  /** Share of the samples in which a service backend was running the claim. */
  claimActiveShare: number;
  waiting: number;
}

function windowOf(sampler: Sampler, from: number, to: number, claim: ClaimTime): OutageWindow {
  const a = sampler.at(from);
  const b = sampler.at(to);
  const inside = sampler.samples.filter((s) => s.t > a.t && s.t <= b.t);
  const seconds = b.t - a.t;
  const failed = b.rejected - a.rejected;
  return {
    from,
    to,
    pgCpuPct: ((b.pgCpu - a.pgCpu) / seconds) * 100,
    failedAttempts: failed,
    pgMsPerRetry: ((b.pgCpu - a.pgCpu) * 1000) / failed,
    serviceCpuPct: ((b.serviceCpu - a.serviceCpu) / seconds) * 100,
    serviceMsPerRetry: ((b.serviceCpu - a.serviceCpu) * 1000) / failed,
    rssMb: Math.max(...inside.map((s) => s.rssMb)),
    claim,
    claimActiveShare: inside.filter((s) => s.claiming > 0).length / Math.max(1, inside.length),
    waiting: b.waiting,
  };
}

function describeWindow(w: OutageWindow): string {
  return (
    `${w.from}-${w.to} s: PostgreSQL ${w.pgCpuPct.toFixed(0)}% of a core, ${w.pgMsPerRetry.toFixed(2)} ms per failed attempt ` +
    `(${w.failedAttempts}); service ${w.serviceCpuPct.toFixed(0)}%, RSS ${w.rssMb.toFixed(0)} MB; claim ${w.claim.ms.toFixed(2)} ms ` +
    `(${w.claim.buffers.toFixed(0)} buffers, ${w.claim.rows} rows), running in ${(w.claimActiveShare * 100).toFixed(0)}% of samples; ` +
    `${w.waiting} waiting`
  );
}

/** A fixed pseudo-random sequence, so that every run commits the same changes. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

const FLIP = `UPDATE orders SET state = CASE state WHEN 'accepted' THEN 'signed' ELSE 'accepted' END`;

/** `RATE` single-row state changes a second over the W5 orders, from 4 connections, for `seconds`. */
async function commitPaced(dbUrl: string, seconds: number): Promise<number> {
  const total = RATE * seconds;
  const pick = random(15);
  const ids = Array.from({ length: total }, () => W5_FIRST_ORDER + Math.floor(pick() * W5_ORDERS));
  const clients = await Promise.all(
    Array.from({ length: 4 }, async () => {
      const client = new pg.Client({ connectionString: dbUrl, application_name: 'bench order app' });
      await client.connect();
      return client;
    }),
  );
  const start = now() + 20;
  let next = 0;
  try {
    await Promise.all(
      clients.map(async (client) => {
        while (next < total) {
          const i = next++;
          const wait = start + (i * 1000) / RATE - now();
          if (wait > 0) await sleep(wait);
          await client.query({ name: 'flip', text: `${FLIP} WHERE id = $1`, values: [ids[i]] });
        }
      }),
    );
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
  return total;
}

export interface OutageResult {
  seconds: number;
  changes: number;
  windows: OutageWindow[];
  drain: {
    seconds: number;
    perSecond: number;
    events: number;
    delivered: number;
    lost: number;
    duplicates: number;
    orderViolations: number;
    failed: number;
    /** Events per second delivered in each 5 s of the drain. */
    perInterval: number[];
    /** From the receiver's return to the first event it accepted (the next probe). */
    detectionSeconds: number;
    /** CPU per event delivered, over the drain (sampled each second): the service's, and its PostgreSQL backends'. */
    serviceCpuMsPerEvent: number;
    pgCpuMsPerEvent: number;
  };
  /** The circuit breaker during the outage (null fields: it never opened). */
  breaker: {
    /** Seconds into the outage when the endpoint was first seen down. */
    openedAfter: number | null;
    /** From 2 s after it opened (requests under way have finished) to the end of the outage. */
    seconds: number;
    requests: number;
    requestsPerSecond: number;
    pgCpuPct: number;
    serviceCpuPct: number;
  };
  peakRssMb: number;
  /** PostgreSQL CPU ms per failed attempt over the whole outage. */
  pgMsPerRetry: number;
  ratios: { pgMsPerRetry: number; serviceCpu: number; claim: number };
  series: { t: number; pgCpuPct: number; serviceCpuPct: number; pgMsPerRetry: number; waiting: number }[];
}

export async function runOutage(ctx: OutageContext, plotPath: string | undefined): Promise<OutageResult> {
  const { db, receiver, log } = ctx;
  await receiver.phase(0, 503);
  const explain = await explainClient(ctx.dbUrl);
  const watch = await explainClient(ctx.dbUrl);
  const start = now();
  const sampler = new Sampler(watch, ctx, start);
  await sampler.begin();
  log(`W5: the receiver answers 503 for ${OUTAGE_SECONDS} s while ${RATE} changes/s are committed over ${W5_ORDERS} orders`);
  const committing = commitPaced(ctx.dbUrl, OUTAGE_SECONDS);
  const windows: OutageWindow[] = [];
  for (let to = WINDOW_SECONDS; to <= OUTAGE_SECONDS; to += WINDOW_SECONDS) {
    await sleep(start + to * 1000 - now());
    const claim = await claimTime(explain);
    const w = windowOf(sampler, to - WINDOW_SECONDS, to, claim);
    windows.push(w);
    log(`W5 outage ${describeWindow(w)}`);
  }
  const changes = await committing;
  await receiver.answer(200);
  const recovery = now();
  const recoveryT = (recovery - start) / 1000;
  log(`W5: the receiver is back (${changes} changes committed)`);
  const deadline = Date.now() + 300_000;
  while ((await ctx.backlog()) > 0 && Date.now() < deadline) await sleep(200);
  await sleep(1100); // one more sample after the drain
  await sampler.end();
  const claimAfter = await claimTime(explain);
  await explain.end();
  await watch.end();

  const got = await receiver.collect();
  const { rows: outbox } = await db.query<{ event_id: string; order_id: string; change_id: string; status: string }>(
    `SELECT event_id::text, order_id, change_id::text, status FROM ${SCHEMA}.outbox
      WHERE order_id = ANY($1::text[])`,
    [Array.from({ length: W5_ORDERS }, (_, i) => String(W5_FIRST_ORDER + i))],
  );
  const byId = new Map(outbox.map((r) => [r.event_id, r]));
  const seen = new Set<string>();
  const lastChangeOf = new Map<string, bigint>();
  let duplicates = 0;
  let orderViolations = 0;
  let lastArrival = recovery;
  let firstArrival = Number.POSITIVE_INFINITY;
  const arrivalTimes: number[] = [];
  for (const a of got.arrivals) {
    const row = byId.get(a.eventId);
    if (!row) continue;
    if (seen.has(a.eventId)) {
      duplicates++;
      continue;
    }
    seen.add(a.eventId);
    arrivalTimes.push(a.at);
    lastArrival = Math.max(lastArrival, a.at);
    if (a.at >= recovery) firstArrival = Math.min(firstArrival, a.at);
    const change = BigInt(row.change_id);
    const before = lastChangeOf.get(row.order_id);
    if (before !== undefined && change < before) orderViolations++;
    lastChangeOf.set(row.order_id, change);
  }
  // The drain is timed from the first event the receiver accepted after its return (the probe that
  // found it back): the time before is detection, set by the probe interval, reported apart.
  const drainFrom = Number.isFinite(firstArrival) ? firstArrival : recovery;
  const drainSeconds = (lastArrival - drainFrom) / 1000;
  const perInterval: number[] = [];
  for (let t = 0; t < drainSeconds; t += 5) {
    perInterval.push(arrivalTimes.filter((at) => at - drainFrom >= t * 1000 && at - drainFrom < (t + 5) * 1000).length / 5);
  }
  const drainA = sampler.at((drainFrom - start) / 1000);
  const drainB = sampler.at((lastArrival - start) / 1000 + 1);
  const drain = {
    seconds: drainSeconds,
    serviceCpuMsPerEvent: ((drainB.serviceCpu - drainA.serviceCpu) * 1000) / seen.size,
    pgCpuMsPerEvent: ((drainB.pgCpu - drainA.pgCpu) * 1000) / seen.size,
    detectionSeconds: (drainFrom - recovery) / 1000,
    perSecond: seen.size / drainSeconds,
    events: outbox.length,
    delivered: seen.size,
    lost: changes - seen.size,
    duplicates,
    orderViolations,
    failed: outbox.filter((r) => r.status === 'failed').length,
    perInterval,
  };
  const opened = sampler.samples.find((s) => s.endpoint === 'down' && s.t <= OUTAGE_SECONDS);
  const breaker: OutageResult['breaker'] = {
    openedAfter: opened?.t ?? null,
    seconds: 0,
    requests: 0,
    requestsPerSecond: Number.NaN,
    pgCpuPct: Number.NaN,
    serviceCpuPct: Number.NaN,
  };
  if (opened) {
    const a = sampler.at(opened.t + 2);
    const b = sampler.at(OUTAGE_SECONDS);
    breaker.seconds = b.t - a.t;
    breaker.requests = b.rejected - a.rejected;
    breaker.requestsPerSecond = breaker.requests / breaker.seconds;
    breaker.pgCpuPct = ((b.pgCpu - a.pgCpu) / breaker.seconds) * 100;
    breaker.serviceCpuPct = ((b.serviceCpu - a.serviceCpu) / breaker.seconds) * 100;
  }
  log(
    `W5 breaker: ${opened ? `open after ${opened.t.toFixed(1)} s; then ${breaker.requests} requests to the dead receiver in ${breaker.seconds.toFixed(0)} s (${breaker.requestsPerSecond.toFixed(3)}/s), PostgreSQL ${breaker.pgCpuPct.toFixed(1)}% of a core, service ${breaker.serviceCpuPct.toFixed(1)}%` : 'never opened'}`,
  );
  log(
    `W5 drain: receiver back → first delivery ${drain.detectionSeconds.toFixed(1)} s; ${drain.delivered} events in ${drainSeconds.toFixed(1)} s, ${drain.perSecond.toFixed(0)} events/s ` +
      `(per 5 s: ${perInterval.map((n) => n.toFixed(0)).join(', ')}); lost ${drain.lost}, duplicates ${duplicates}, ` +
      `order violations ${orderViolations}, failed ${drain.failed}; CPU per event: service ${drain.serviceCpuMsPerEvent.toFixed(3)} ms, ` +
      `PostgreSQL ${drain.pgCpuMsPerEvent.toFixed(3)} ms; claim after the drain ${claimAfter.ms.toFixed(2)} ms`,
  );

  // The plot's series, per 5 s.
  const series: OutageResult['series'] = [];
  const end = sampler.samples.at(-1)!.t;
  for (let t = 5; t <= end; t += 5) {
    const a = sampler.at(t - 5);
    const b = sampler.at(t);
    const seconds = Math.max(b.t - a.t, 1e-9);
    const failed = b.rejected - a.rejected;
    series.push({
      t,
      pgCpuPct: ((b.pgCpu - a.pgCpu) / seconds) * 100,
      serviceCpuPct: ((b.serviceCpu - a.serviceCpu) / seconds) * 100,
      pgMsPerRetry: failed > 0 ? ((b.pgCpu - a.pgCpu) * 1000) / failed : NaN,
      waiting: b.waiting,
    });
  }
  const first = windows[0]!;
  const last = windows.at(-1)!;
  const whole = { a: sampler.at(0), b: sampler.at(OUTAGE_SECONDS) };
  const result: OutageResult = {
    seconds: OUTAGE_SECONDS,
    changes,
    windows,
    drain,
    breaker,
    peakRssMb: Math.max(...sampler.samples.map((s) => s.rssMb), ctx.service.peakRssMb()),
    pgMsPerRetry: ((whole.b.pgCpu - whole.a.pgCpu) * 1000) / (whole.b.rejected - whole.a.rejected),
    ratios: {
      pgMsPerRetry: last.pgMsPerRetry / first.pgMsPerRetry,
      serviceCpu: last.serviceCpuPct / first.serviceCpuPct,
      claim: last.claim.ms / first.claim.ms,
    },
    series,
  };
  if (plotPath) {
    const xs = (pick: (s: OutageResult['series'][number]) => number) =>
      series.filter((s) => Number.isFinite(pick(s))).map((s): [number, number] => [s.t, pick(s)]);
    const panels: Panel[] = [
      {
        title: 'CPU, % of one core (per 5 s)',
        series: [
          { name: "PostgreSQL (the service's backends)", color: '#c0392b', points: xs((s) => s.pgCpuPct) },
          { name: 'service', color: '#2471a3', points: xs((s) => s.serviceCpuPct) },
        ],
      },
      {
        title: 'PostgreSQL CPU per failed attempt, ms (per 5 s, outage only)',
        series: [
          { name: 'ms per failed attempt', color: '#c0392b', points: xs((s) => s.pgMsPerRetry).filter(([t]) => t <= OUTAGE_SECONDS) },
        ],
      },
      {
        title: 'outbox claim statement, ms (EXPLAIN ANALYZE, median of 5)',
        series: [
          {
            name: 'claim',
            color: '#7d3c98',
            points: [...windows.map((w): [number, number] => [w.to, w.claim.ms]), [end, claimAfter.ms]],
          },
        ],
      },
      { title: 'events waiting (journal + pending outbox)', series: [{ name: 'waiting', color: '#1e8449', points: xs((s) => s.waiting) }] },
    ];
    writeFileSync(
      plotPath,
      plotSvg(
        `W5: receiver down ${OUTAGE_SECONDS} s at ${RATE} changes/s over ${W5_ORDERS} orders, then back`,
        panels,
        Math.ceil(end / 10) * 10,
        [{ at: recoveryT, text: 'receiver back' }],
      ),
    );
    log(`W5 plot: ${plotPath}`);
  }
  return result;
}

export interface BigBacklogResult {
  small: { waiting: number; inOutbox: number; claim: ClaimTime; pgMsPerRetry: number; pgCpuPct: number; journalEmptySeconds: number };
  large: { waiting: number; inOutbox: number; claim: ClaimTime; pgMsPerRetry: number; pgCpuPct: number; journalEmptySeconds: number };
  ratio: number;
}

/** W5b: the claim at 2,000 waiting events and at 200,000, with the receiver down throughout. */
export async function runBigBacklog(ctx: OutageContext): Promise<BigBacklogResult> {
  const { db, receiver, log } = ctx;
  await receiver.phase(0, 503);
  const explain = await explainClient(ctx.dbUrl);
  const watch = await explainClient(ctx.dbUrl);
  const sampler = new Sampler(watch, ctx, now(), 5000);
  await sampler.begin();
  const where = `WHERE id BETWEEN ${W5B_FIRST_ORDER} AND ${W5B_FIRST_ORDER + W5B_ORDERS - 1}`;
  const journalEmpty = async (what: string) => {
    const started = now();
    // Bounded, so that BENCH_ONLY=W5 stays within 10 minutes; the log says how far it got.
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline) {
      const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${SCHEMA}.change`);
      if (rows[0]!.n === 0) break;
      await sleep(200);
    }
    const seconds = (now() - started) / 1000;
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${SCHEMA}.change`);
    log(`W5b: ${what}: ${rows[0]!.n} still in the journal after ${seconds.toFixed(1)} s`);
    return seconds;
  };
  const measure = async (journalEmptySeconds: number) => {
    const a = sampler.samples.at(-1)!;
    await sleep(15_000);
    const b = sampler.samples.at(-1)!;
    const claim = await claimTime(explain);
    const waiting = await ctx.backlog();
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${SCHEMA}.outbox WHERE status = 'pending'`);
    return {
      waiting,
      inOutbox: rows[0]!.n,
      claim,
      pgMsPerRetry: ((b.pgCpu - a.pgCpu) * 1000) / (b.rejected - a.rejected),
      pgCpuPct: ((b.pgCpu - a.pgCpu) / Math.max(b.t - a.t, 1e-9)) * 100,
      journalEmptySeconds,
    };
  };
  log(`W5b: ${W5B_ORDERS} changes, one per order, the receiver down`);
  await db.query(`${FLIP} ${where}`);
  const small = await measure(await journalEmpty(`${W5B_ORDERS} changes`));
  log(
    `W5b at ${small.waiting} waiting (${small.inOutbox} in the outbox): claim ${small.claim.ms.toFixed(2)} ms (${small.claim.buffers.toFixed(0)} buffers), PostgreSQL ${small.pgCpuPct.toFixed(1)}% of a core, ${small.pgMsPerRetry.toFixed(2)} ms per failed attempt`,
  );
  const more = W5B_ORDERS * (W5B_CHANGES_PER_ORDER - 1);
  log(`W5b: ${more} more changes over the same orders`);
  for (let i = 1; i < W5B_CHANGES_PER_ORDER; i++) await db.query(`${FLIP} ${where}`);
  const large = await measure(await journalEmpty(`${more} changes`));
  log(
    `W5b at ${large.waiting} waiting (${large.inOutbox} in the outbox): claim ${large.claim.ms.toFixed(2)} ms (${large.claim.buffers.toFixed(0)} buffers), PostgreSQL ${large.pgCpuPct.toFixed(1)}% of a core, ${large.pgMsPerRetry.toFixed(2)} ms per failed attempt`,
  );
  await sampler.end();
  await explain.end();
  await watch.end();
  return { small, large, ratio: large.claim.ms / small.claim.ms };
}
