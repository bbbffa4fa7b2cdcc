// W7 history: the service against an outbox that keeps a month of delivered events. On an embedded
// PostgreSQL of its own with autovacuum on (as a real install has it; the shared test server has it
// off), two databases: one with an empty outbox, one pre-filled by SQL with BENCH_W7_ROWS delivered
// events and their attempts spread over 31 days (prefill.ts). Then:
// - W2's two loads (20,000 changes as fast as they go, 10,000 at 500/s), empty and filled
//   alternating, BENCH_W7_PAIRS pairs;
// - the operator's reads on each: the reads of `status`, the page's summary (/api/summary) and the
//   page itself, `outbox list`'s first page; and, for comparison, the old exact counts;
// - retention deleting the expired day (a 31st of the rows) while W2's saturated load runs, against
//   the same load with nothing to delete;
// - a steady paced load (BENCH_W7_STEADY_RATE events/s for BENCH_W7_STEADY_MINUTES) while retention
//   deletes as many old events as arrive, with the outbox's table and index sizes sampled.
import { execFileSync } from 'node:child_process';
import { freePort, startEmbeddedPostgres } from '../src/demo/embeddedPostgres.ts';
import { listEvents } from '../src/outbox/reads.ts';
import { readEndpointStates } from '../src/outbox/endpointState.ts';
import { endpointCounts, outboxStatus } from '../src/outbox/status.ts';
import { type BenchDb, type Commit, commitChanges, createBenchDb, ORDERS, range, SECRET } from './benchDb.ts';
import { prefill, type PrefillResult } from './prefill.ts';
import { type ReceiverProcess, type ServiceProcess, startReceiver, startService } from './processes.ts';
import type { Arrival } from './receiver.ts';
import { type Latency, mean, percentile } from './stats.ts';

const ROWS = Number(process.env.BENCH_W7_ROWS ?? 20_000_000);
const PAIRS = Number(process.env.BENCH_W7_PAIRS ?? 2);
const STEADY_MINUTES = Number(process.env.BENCH_W7_STEADY_MINUTES ?? 3);
const STEADY_RATE = Number(process.env.BENCH_W7_STEADY_RATE ?? 100);
/** Delivered events are kept this long; the pre-fill spans one day more, which retention deletes. */
const KEPT_DAYS = 30;
const SCHEMA = 'order_webhooks';
/** The steady run's orders: those no earlier load of W7 moved. */
const STEADY_FIRST_ID = 50_001;
const BIN = new URL('../bin/order-webhooks.js', import.meta.url).pathname;

interface Delivery {
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  perSecond: number;
  latency: Latency;
}

export interface HistoryContext {
  log: (message: string) => void;
  load: () => string;
  serviceNodeArgs: string[];
  awaitArrivals: (receiver: ReceiverProcess, expected: number) => Promise<void>;
  analyse: (expected: Map<string, Commit>, arrivals: Arrival[], badSignatures: number) => Delivery;
  keyed: (commits: Map<number, Commit>, eventType: string) => Map<string, Commit>;
}

interface W2Run {
  outbox: 'empty' | 'filled';
  perSecond: number;
  pacedP50: number;
  pacedP99: number;
  lost: number;
  duplicates: number;
  load: string;
}

/** Milliseconds, the median of `runs` timings (the first, cold, is left out). */
interface Reads {
  statusMs: number;
  pageSummaryMs: number;
  pageMs: number;
  listFirstPageMs: number;
  listFailedMs: number;
  cliStatusMs: number;
  cliListMs: number;
  /** The reads the operator surfaces made before: exact counts of the whole outbox. */
  exactDeliveredCountMs: number;
  summaryViewMs: number;
  lastFailureByViewMs: number;
  deliveredShown: number;
  deliveredEstimated: boolean;
  deliveredExact: number;
}

interface Sizes {
  at: number;
  /** Bytes: outbox and outbox_attempt, table (with TOAST) and indexes. */
  outboxTable: number;
  outboxIndexes: number;
  attemptTable: number;
  attemptIndexes: number;
  total: number;
  liveRows: number;
  deadRows: number;
  autovacuums: number;
}

export interface HistoryResult {
  rows: number;
  prefill: PrefillResult;
  bytesPerEvent: number;
  runs: W2Run[];
  empty: { perSecond: number; pacedP99: number };
  filled: { perSecond: number; pacedP99: number };
  throughputRatio: number;
  p99Ratio: number;
  reads: { empty: Reads; filled: Reads };
  retention: { without: number; with: number; ratio: number; expired: number; deletedDuringLoad: number; deletionSeconds: number };
  steady: { minutes: number; rate: number; delivered: number; lost: number; samples: Sizes[]; growth: number; maxGrowth: number };
}

const STATES: [string, string][] = [
  ['signed', 'OrderSigned'],
  ['accepted', 'OrderAccepted'],
  ['cancelled', 'OrderCanceled'],
  ['expired', 'OrderExpired'],
  ['rejected', 'OrderRejected'],
];

async function timed(runs: number, work: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const started = performance.now();
    await work();
    if (i > 0) times.push(performance.now() - started);
  }
  return percentile(
    times.sort((a, b) => a - b),
    50,
  );
}

function cliMs(configPath: string, args: string[]): number {
  const started = performance.now();
  execFileSync(process.execPath, [BIN, ...args, '--config', configPath], { stdio: ['ignore', 'ignore', 'inherit'] });
  return performance.now() - started;
}

async function sizes(db: BenchDb): Promise<Sizes> {
  const { rows } = await db.db.query<{
    relname: string;
    tbl: string;
    idx: string;
    live: string;
    dead: string;
    autovacuums: string;
  }>(
    `SELECT c.relname, pg_table_size(c.oid)::text AS tbl, pg_indexes_size(c.oid)::text AS idx,
            s.n_live_tup::text AS live, s.n_dead_tup::text AS dead, s.autovacuum_count::text AS autovacuums
       FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
      WHERE c.relnamespace = $1::regnamespace AND c.relname IN ('outbox', 'outbox_attempt')`,
    [SCHEMA],
  );
  const of = (name: string) => rows.find((r) => r.relname === name)!;
  const o = of('outbox');
  const a = of('outbox_attempt');
  const out = {
    at: Date.now(),
    outboxTable: Number(o.tbl),
    outboxIndexes: Number(o.idx),
    attemptTable: Number(a.tbl),
    attemptIndexes: Number(a.idx),
    total: 0,
    liveRows: Number(o.live),
    deadRows: Number(o.dead) + Number(a.dead),
    autovacuums: Number(o.autovacuums) + Number(a.autovacuums),
  };
  out.total = out.outboxTable + out.outboxIndexes + out.attemptTable + out.attemptIndexes;
  return out;
}

export async function runHistory(ctx: HistoryContext): Promise<HistoryResult> {
  const { log } = ctx;
  log(`W7: embedded PostgreSQL with autovacuum on; ${ROWS.toLocaleString('en-US')} events of history`);
  const server = await startEmbeddedPostgres({
    label: 'order-webhooks-w7',
    auth: 'trust',
    settings: { autovacuum: 'on', shared_buffers: '256MB', max_wal_size: '4GB', max_connections: '200' },
  });
  const receiver = await startReceiver(SECRET);
  let service: ServiceProcess | undefined;
  const dbs: BenchDb[] = [];
  try {
    const ports = { empty: await freePort(), filled: await freePort() };
    const noRetention = { retention: { delivered: null } };
    const empty = await createBenchDb(server.url(), 'w7_empty', receiver.url, { http: { port: ports.empty, ui: true }, ...noRetention });
    dbs.push(empty);
    const filled = await createBenchDb(server.url(), 'w7_filled', receiver.url, { http: { port: ports.filled, ui: true }, ...noRetention });
    dbs.push(filled);
    const pre = await prefill(filled.db, SCHEMA, ROWS, KEPT_DAYS + 1, log);
    const atStart = await sizes(filled);
    const bytesPerEvent = atStart.total / ROWS;
    log(
      `W7 pre-fill: ${ROWS.toLocaleString('en-US')} events in ${pre.seconds.toFixed(0)} s (indexes ${pre.indexSeconds.toFixed(0)} s); ${(atStart.total / 2 ** 20).toFixed(0)} MiB, ${bytesPerEvent.toFixed(0)} bytes per event`,
    );
    const side = { empty, filled };
    const runsPerSide = { empty: 0, filled: 0 };

    // ---- W2 on each, alternating ----
    const runs: W2Run[] = [];
    for (let pair = 0; pair < PAIRS; pair++) {
      for (const outbox of ['empty', 'filled'] as const) {
        const bench = side[outbox];
        const k = runsPerSide[outbox]++;
        const [fastState, fastEvent] = STATES[(2 * k) % 5]!;
        const [pacedState, pacedEvent] = STATES[(2 * k + 1) % 5]!;
        const load = ctx.load();
        service = await startService(bench.configPath, ctx.serviceNodeArgs);
        await receiver.phase();
        const commits = await commitChanges(bench.url, range(1, 20_000), fastState, 8);
        await ctx.awaitArrivals(receiver, 20_000);
        let got = await receiver.collect();
        const saturated = ctx.analyse(ctx.keyed(commits, fastEvent), got.arrivals, got.badSignatures);
        await receiver.phase();
        const pacedCommits = await commitChanges(bench.url, range(20_001, 10_000), pacedState, 8, 500);
        await ctx.awaitArrivals(receiver, 10_000);
        got = await receiver.collect();
        const paced = ctx.analyse(ctx.keyed(pacedCommits, pacedEvent), got.arrivals, got.badSignatures);
        await service.stop();
        service = undefined;
        const run = {
          outbox,
          perSecond: saturated.perSecond,
          pacedP50: paced.latency.p50,
          pacedP99: paced.latency.p99,
          lost: saturated.lost + paced.lost,
          duplicates: saturated.duplicates + paced.duplicates,
          load,
        };
        runs.push(run);
        log(
          `W7 W2 ${outbox} outbox: ${run.perSecond.toFixed(0)} events/s, paced p50/p99 ${run.pacedP50.toFixed(1)}/${run.pacedP99.toFixed(1)} ms, lost ${run.lost}, dup ${run.duplicates}`,
        );
      }
    }
    const of = (outbox: 'empty' | 'filled') => {
      const mine = runs.filter((r) => r.outbox === outbox);
      return { perSecond: mean(mine.map((r) => r.perSecond)), pacedP99: mean(mine.map((r) => r.pacedP99)) };
    };

    // ---- the operator's reads ----
    const reads = async (outbox: 'empty' | 'filled'): Promise<Reads> => {
      const bench = side[outbox];
      service = await startService(bench.configPath, ctx.serviceNodeArgs);
      const page = `http://127.0.0.1:${ports[outbox]}`;
      const get = async (path: string) => {
        const response = await fetch(`${page}${path}`);
        if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
        return response.text();
      };
      const db = bench.db;
      const status = await outboxStatus(db, SCHEMA);
      const result: Reads = {
        statusMs: await timed(5, async () => {
          await outboxStatus(db, SCHEMA);
          await endpointCounts(db, SCHEMA, ['default']);
          await readEndpointStates(db, SCHEMA, ['default']);
        }),
        pageSummaryMs: await timed(5, () => get('/api/summary')),
        pageMs: await timed(5, () => get('/')),
        listFirstPageMs: await timed(5, () => listEvents(db, SCHEMA, { limit: 50 })),
        listFailedMs: await timed(5, () => listEvents(db, SCHEMA, { limit: 50, status: 'failed' })),
        cliStatusMs: cliMs(bench.configPath, ['status', '--json']),
        cliListMs: cliMs(bench.configPath, ['outbox', 'list', '--json']),
        exactDeliveredCountMs: await timed(2, () => db.query(`SELECT count(*) FROM ${SCHEMA}.outbox WHERE status = 'delivered'`)),
        summaryViewMs: await timed(2, () => db.query(`SELECT endpoint, status, sum(events) FROM ${SCHEMA}.summary GROUP BY 1, 2`)),
        lastFailureByViewMs: await timed(2, () =>
          db.query(`SELECT event_id FROM ${SCHEMA}.attempts WHERE outcome <> 'delivered' ORDER BY started_at DESC LIMIT 1`),
        ),
        deliveredShown: status.counts.delivered,
        deliveredEstimated: status.deliveredEstimated,
        deliveredExact: Number(
          (await db.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${SCHEMA}.outbox WHERE status = 'delivered'`)).rows[0]!.n,
        ),
      };
      await service.stop();
      service = undefined;
      log(
        `W7 reads, ${outbox} outbox: status ${result.statusMs.toFixed(1)} ms, page summary ${result.pageSummaryMs.toFixed(1)} ms, page ${result.pageMs.toFixed(1)} ms, outbox list ${result.listFirstPageMs.toFixed(1)} ms (--status failed ${result.listFailedMs.toFixed(1)} ms); CLI status ${result.cliStatusMs.toFixed(0)} ms, list ${result.cliListMs.toFixed(0)} ms; before: exact count ${result.exactDeliveredCountMs.toFixed(0)} ms, summary view ${result.summaryViewMs.toFixed(0)} ms, last failure by the view ${result.lastFailureByViewMs.toFixed(0)} ms; delivered shown ${result.deliveredShown}${result.deliveredEstimated ? ' (estimated)' : ''} of ${result.deliveredExact}`,
      );
      return result;
    };
    const readsEmpty = await reads('empty');
    const readsFilled = await reads('filled');

    // ---- retention deleting the expired day under W2's saturated load ----
    // Expired by the start of the measurement: rows keep expiring as time passes, and those are the
    // next rounds' work, not this one's.
    const cutoff = new Date(Date.now() - KEPT_DAYS * 86_400_000);
    const expiredCount = async () =>
      Number(
        (
          await filled.db.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM ${SCHEMA}.outbox WHERE status = 'delivered' AND delivered_at < $1`,
            [cutoff],
          )
        ).rows[0]!.n,
      );
    const expired = await expiredCount();
    const retentionRuns: { retention: boolean; perSecond: number }[] = [];
    let deletedDuringLoad = 0;
    let deletionSeconds = 0;
    for (const withRetention of [false, true]) {
      const k = runsPerSide.filled++;
      const [state, eventType] = STATES[(2 * k) % 5]!;
      filled.reconfigure({ retention: { delivered: withRetention ? `P${KEPT_DAYS}D` : null } });
      await receiver.phase();
      // Retention's first round runs at start: the load begins as it does.
      service = await startService(filled.configPath, ctx.serviceNodeArgs);
      const started = Date.now();
      const commits = await commitChanges(filled.url, range(30_001, 20_000), state, 8);
      await ctx.awaitArrivals(receiver, 20_000);
      const got = await receiver.collect();
      const delivery = ctx.analyse(ctx.keyed(commits, eventType), got.arrivals, got.badSignatures);
      retentionRuns.push({ retention: withRetention, perSecond: delivery.perSecond });
      if (withRetention) {
        deletedDuringLoad = expired - (await expiredCount());
        const deadline = Date.now() + 30 * 60_000;
        while ((await expiredCount()) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1000));
        deletionSeconds = (Date.now() - started) / 1000;
      }
      await service.stop();
      service = undefined;
      log(
        `W7 retention ${withRetention ? 'deleting' : 'off'}: ${delivery.perSecond.toFixed(0)} events/s, lost ${delivery.lost}, dup ${delivery.duplicates}${withRetention ? `; ${deletedDuringLoad.toLocaleString('en-US')} of ${expired.toLocaleString('en-US')} expired deleted during the load, all after ${deletionSeconds.toFixed(0)} s` : ''}`,
      );
    }
    const without = retentionRuns.find((r) => !r.retention)!.perSecond;
    const withDeletion = retentionRuns.find((r) => r.retention)!.perSecond;

    // ---- steady: as many events expire as arrive, for STEADY_MINUTES ----
    const seconds = STEADY_MINUTES * 60;
    const count = Math.round(STEADY_RATE * seconds);
    filled.reconfigure({ retention: { delivered: `P${KEPT_DAYS}D` } });
    // The oldest kept events are re-dated to expire one by one at the load's rate from now on.
    await filled.db.query(
      `UPDATE ${SCHEMA}.outbox o SET delivered_at = now() - interval '${KEPT_DAYS} days' + (r.n / $2::float8) * interval '1 second'
         FROM (SELECT id, row_number() OVER (ORDER BY delivered_at) AS n FROM ${SCHEMA}.outbox
                WHERE status = 'delivered' ORDER BY delivered_at LIMIT $1) r
        WHERE o.id = r.id`,
      [count + STEADY_RATE * 60, STEADY_RATE],
    );
    await receiver.phase();
    service = await startService(filled.configPath, ctx.serviceNodeArgs);
    const samples: Sizes[] = [await sizes(filled)];
    const sampler = setInterval(() => {
      void sizes(filled).then((s) => {
        samples.push(s);
        log(
          `W7 steady: ${(s.total / 2 ** 20).toFixed(1)} MiB (outbox ${(s.outboxTable / 2 ** 20).toFixed(1)} + ${(s.outboxIndexes / 2 ** 20).toFixed(1)}, attempts ${(s.attemptTable / 2 ** 20).toFixed(1)} + ${(s.attemptIndexes / 2 ** 20).toFixed(1)}), dead rows ${s.deadRows}, autovacuums ${s.autovacuums}`,
        );
      });
    }, 30_000);
    log(`W7 steady: ${STEADY_RATE} events/s for ${STEADY_MINUTES} min while as many expire`);
    let delivered = 0;
    let lost = 0;
    try {
      // Orders no earlier load moved (W2's are 1 to 30,000, retention's 30,001 to 50,000), each pass
      // to a state the last left none of them in: every change is an event.
      for (let done = 0, pass = 0; done < count; pass++) {
        const n = Math.min(ORDERS - STEADY_FIRST_ID + 1, count - done);
        const [state, eventType] = STATES[pass % 2]!;
        await receiver.phase();
        const commits = await commitChanges(filled.url, range(STEADY_FIRST_ID, n), state, 8, STEADY_RATE);
        await ctx.awaitArrivals(receiver, n);
        const got = await receiver.collect();
        const d = ctx.analyse(ctx.keyed(commits, eventType), got.arrivals, got.badSignatures);
        delivered += d.delivered;
        lost += d.lost;
        done += n;
      }
    } finally {
      clearInterval(sampler);
    }
    samples.push(await sizes(filled));
    await service.stop();
    service = undefined;
    const first = samples[0]!.total;
    const growth = samples.at(-1)!.total / first - 1;
    const maxGrowth = Math.max(...samples.map((s) => s.total)) / first - 1;
    log(
      `W7 steady: ${delivered} delivered, ${lost} lost; size ${(first / 2 ** 20).toFixed(1)} → ${(samples.at(-1)!.total / 2 ** 20).toFixed(1)} MiB (${(growth * 100).toFixed(1)}%, at most ${(maxGrowth * 100).toFixed(1)}%)`,
    );
    const e = of('empty');
    const f = of('filled');
    return {
      rows: ROWS,
      prefill: pre,
      bytesPerEvent,
      runs,
      empty: e,
      filled: f,
      throughputRatio: f.perSecond / e.perSecond,
      p99Ratio: f.pacedP99 / e.pacedP99,
      reads: { empty: readsEmpty, filled: readsFilled },
      retention: { without, with: withDeletion, ratio: withDeletion / without, expired, deletedDuringLoad, deletionSeconds },
      steady: { minutes: STEADY_MINUTES, rate: STEADY_RATE, delivered, lost, samples, growth, maxGrowth },
    };
  } finally {
    await service?.stop().catch(() => undefined);
    receiver.close();
    for (const db of dbs) await db.db.end().catch(() => undefined);
    await server.stop();
  }
}

type Row = [string, string, string, boolean | undefined];

/** W7's lines of the bench's table. */
export function historyRows(w7: HistoryResult | undefined, f: (n: number, digits?: number) => string): Row[] {
  if (!w7) return [];
  const r = w7.reads;
  const mib = (bytes: number) => `${f(bytes / 2 ** 20, 1)} MiB`;
  const steady = w7.steady;
  return [
    [`W7 history: delivered events kept (pre-filled over ${KEPT_DAYS + 1} days)`, f(w7.rows), '', undefined],
    ['W7 bytes per delivered event kept (outbox, attempts, their indexes)', f(w7.bytesPerEvent), '≤ 200', w7.bytesPerEvent <= 200],
    [
      `W7 W2 events/s, empty / filled outbox (mean of ${PAIRS})`,
      `${f(w7.empty.perSecond)} / ${f(w7.filled.perSecond)} (${f(w7.throughputRatio, 2)})`,
      '≥ 0.90',
      w7.throughputRatio >= 0.9,
    ],
    [
      'W7 W2 paced p99 ms, empty / filled outbox',
      `${f(w7.empty.pacedP99, 1)} / ${f(w7.filled.pacedP99, 1)} (${f(w7.p99Ratio, 2)})`,
      '≤ 1.10',
      w7.p99Ratio <= 1.1,
    ],
    [
      'W7 W2 lost / duplicates',
      `${w7.runs.reduce((n, x) => n + x.lost, 0)} / ${w7.runs.reduce((n, x) => n + x.duplicates, 0)}`,
      '0 / 0',
      w7.runs.every((x) => x.lost === 0 && x.duplicates === 0),
    ],
    ['W7 status reads ms, empty / filled', `${f(r.empty.statusMs, 1)} / ${f(r.filled.statusMs, 1)}`, '< 100', r.filled.statusMs < 100],
    [
      'W7 page summary (/api/summary) ms, empty / filled',
      `${f(r.empty.pageSummaryMs, 1)} / ${f(r.filled.pageSummaryMs, 1)}`,
      '< 100',
      r.filled.pageSummaryMs < 100,
    ],
    ['W7 page (/) ms, empty / filled', `${f(r.empty.pageMs, 1)} / ${f(r.filled.pageMs, 1)}`, '', undefined],
    [
      'W7 outbox list first page ms, empty / filled',
      `${f(r.empty.listFirstPageMs, 1)} / ${f(r.filled.listFirstPageMs, 1)}`,
      '< 100',
      r.filled.listFirstPageMs < 100,
    ],
    ['W7 outbox list --status failed ms, filled', f(r.filled.listFailedMs, 1), '', undefined],
    [
      'W7 CLI wall ms (node start included), status / outbox list, empty → filled',
      `${f(r.empty.cliStatusMs)} / ${f(r.empty.cliListMs)} → ${f(r.filled.cliStatusMs)} / ${f(r.filled.cliListMs)}`,
      '',
      undefined,
    ],
    [
      'W7 exact reads the surfaces no longer make ms: count of delivered / summary view / last failure by the view',
      `${f(r.filled.exactDeliveredCountMs)} / ${f(r.filled.summaryViewMs)} / ${f(r.filled.lastFailureByViewMs)}`,
      '',
      undefined,
    ],
    [
      'W7 delivered shown / counted',
      `${f(r.filled.deliveredShown)}${r.filled.deliveredEstimated ? ' (estimated)' : ''} / ${f(r.filled.deliveredExact)}`,
      '',
      undefined,
    ],
    [
      `W7 W2 saturated events/s while retention deletes ${f(w7.retention.expired)} expired (a day) / without`,
      `${f(w7.retention.with)} / ${f(w7.retention.without)} (${f(w7.retention.ratio, 2)})`,
      '≥ 0.90',
      w7.retention.ratio >= 0.9,
    ],
    [
      'W7 expired deleted during the load / all deleted after s',
      `${f(w7.retention.deletedDuringLoad)} / ${f(w7.retention.deletionSeconds)}`,
      '',
      undefined,
    ],
    [
      `W7 steady ${f(steady.rate)} events/s for ${f(steady.minutes)} min, as many expiring: size start → end (max)`,
      `${mib(steady.samples[0]!.total)} → ${mib(steady.samples.at(-1)!.total)} (${f(steady.growth * 100, 1)}%, max ${f(steady.maxGrowth * 100, 1)}%); ${f((steady.samples.at(-1)!.total - steady.samples[0]!.total) / steady.delivered)} bytes grown per event`,
      'stable: grown ≪ bytes per event kept',
      (steady.samples.at(-1)!.total - steady.samples[0]!.total) / steady.delivered < 0.25 * w7.bytesPerEvent,
    ],
    [
      'W7 steady delivered / lost; autovacuum runs',
      `${f(steady.delivered)} / ${f(steady.lost)}; ${steady.samples.at(-1)!.autovacuums - steady.samples[0]!.autovacuums}`,
      '',
      undefined,
    ],
  ];
}
