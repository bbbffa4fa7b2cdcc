// `npm run bench`: the performance suite of issue 6. Creates its own database on the server given by
// BENCH_DATABASE_URL (default: the local one), runs W1–W4 against the real service process, prints
// every figure beside its target, writes bench/results/latest.json, and drops the database.
// BENCH_ONLY=W1,W3 runs a subset (W5 brings W3 along: its drain rate is W5's yardstick);
// BENCH_W1_SECONDS sets the length of each pgbench run, BENCH_W5_SECONDS the outage's;
// BENCH_SERVICE_START=bin (default), node or npm picks how the service is started (processes.ts);
// W6 (retention deleting 500,000 expired rows under a W2 load) runs BENCH_W6_ROUNDS pairs of loads;
// W8 (several receivers: fan-out to three, and one endpoint's outage beside a healthy one) is in endpoints.ts.
// W1b (bulk statements: one UPDATE and one INSERT … SELECT of 100,000 orders, trigger vs none, then
// their delivery) is in bulk.ts, BENCH_W1B_ROUNDS rounds (default 3); it runs after W3, its yardstick.
// BENCH_W2_TRACING=N runs W2 N times with tracing off and N times on, alternating.
// Storage (bytes per delivered event kept, storage.ts) is measured after W2's deliveries.
// Not in the default set (they take long): W7 (history.ts: a month of delivered events on an embedded
// server with autovacuum on; BENCH_W7_ROWS, default 20,000,000, BENCH_W7_PAIRS, BENCH_W7_STEADY_MINUTES,
// BENCH_W7_STEADY_RATE) and W9 (instances.ts: 1, 2 and 4 instances against a 50 ms receiver;
// BENCH_W9_INSTANCES, BENCH_W9_CHANGES).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { type Commit, commitChanges as commitChangesTo } from './benchDb.ts';
import { now } from './clock.ts';
import {
  cpuSecondsOf,
  machineCpuSeconds,
  type ReceiverProcess,
  runGotLoop,
  SERVICE_START,
  startOtlpSink,
  type ServiceProcess,
  startReceiver,
  startService,
} from './processes.ts';
import { type EndpointsResult, runEndpoints } from './endpoints.ts';
import {
  type BigBacklogResult,
  type OutageResult,
  runBigBacklog,
  runOutage,
  serviceBackendsCpuSeconds,
  W5_RETRY_DELAYS,
} from './outage.ts';
import { type BulkResult, bulkRows, runBulk } from './bulk.ts';
import { type HistoryResult, historyRows, runHistory } from './history.ts';
import { type InstancesRun, instancesRows, runInstances } from './instances.ts';
import type { Arrival } from './receiver.ts';
import { latency, type Latency, mean } from './stats.ts';
import { describeStorage, measureStorage, type StorageResult } from './storage.ts';

const SERVER = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ONLY = new Set((process.env.BENCH_ONLY ?? 'W1,W2,W3,W1B,W4,W5,W6,W8').split(',').map((s) => s.trim().toUpperCase()));
if (ONLY.has('W5') || ONLY.has('W1B')) ONLY.add('W3');
const W5_PLOT = process.env.BENCH_W5_PLOT ?? new URL('../docs/w5-outage.svg', import.meta.url).pathname;
const W1_SECONDS = Number(process.env.BENCH_W1_SECONDS ?? 10);
const W6_ROUNDS = Number(process.env.BENCH_W6_ROUNDS ?? 1);
/** Pairs of W2 runs with tracing off and on (0: W2 once, tracing off). */
const W2_TRACING_PAIRS = Number(process.env.BENCH_W2_TRACING ?? 0);
const W6_EXPIRED = 500_000;
const PGBENCH = process.env.PGBENCH ?? '/usr/lib/postgresql/15/bin/pgbench';
const SERVICE_NODE_ARGS = (process.env.BENCH_SERVICE_NODE_ARGS ?? '').split(' ').filter(Boolean);
const ORDERS = 100_000;
const CONCURRENCY = 32;
const SECRET = 'bench-secret';
const RESULTS_DIR = new URL('./results/', import.meta.url);

const dbName = `ow_bench_${randomBytes(4).toString('hex')}`;
const dbUrl = (() => {
  const url = new URL(SERVER);
  url.pathname = `/${dbName}`;
  return url.toString();
})();

// ---- the order app's side -------------------------------------------------------------------

const bodyOf = (id: number, eventType: string) => JSON.stringify({ orderId: String(id), eventType });

/** Single-row state changes of orders `ids`, one transaction each, from `connections` connections. */
const commitChanges = (ids: number[], state: string, connections: number, perSecond?: number): Promise<Map<number, Commit>> =>
  commitChangesTo(dbUrl, ids, state, connections, perSecond);

/** Where the machine's CPU went during a phase: seconds per process group, all cores together. */
interface CpuSplit {
  seconds: number;
  service: number;
  receiver: number;
  /** This process: the order app's connections, or pgbench's client (a child, counted below). */
  bench: number;
  /** Everything else: PostgreSQL's processes (the order app's backends and the service's), pgbench. */
  postgresAndOther: number;
}

function cpuMeter(): () => CpuSplit {
  const snap = () => ({
    at: Date.now(),
    machine: machineCpuSeconds(),
    service: service?.cpuSeconds() ?? 0,
    receiver: receiver!.cpuSeconds(),
    bench: (process.cpuUsage().user + process.cpuUsage().system) / 1e6,
  });
  const before = snap();
  return () => {
    const after = snap();
    const d = (k: 'machine' | 'service' | 'receiver' | 'bench') => Math.max(0, after[k] - before[k]);
    return {
      seconds: (after.at - before.at) / 1000,
      service: d('service'),
      receiver: d('receiver'),
      bench: d('bench'),
      postgresAndOther: Math.max(0, d('machine') - d('service') - d('receiver') - d('bench')),
    };
  };
}

function describeCpu(split: CpuSplit): string {
  const pct = (s: number) => `${((s / split.seconds) * 100).toFixed(0)}%`;
  return `CPU (of 200%): postgres+other ${pct(split.postgresAndOther)}, service ${pct(split.service)}, receiver ${pct(split.receiver)}, bench ${pct(split.bench)}`;
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

// ---- helpers --------------------------------------------------------------------------------

function load(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)} load ${load()}] ${message}\n`);
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  log(`gave up waiting for ${what} after ${timeoutMs} ms`);
  return false;
}

/** Waits until `expected` events arrived, or none arrived for `stallMs`. */
async function awaitArrivals(receiver: ReceiverProcess, expected: number, stallMs = 15_000, timeoutMs = 180_000): Promise<void> {
  let last = -1;
  let lastChange = Date.now();
  await waitUntil(
    `${expected} arrivals`,
    async () => {
      const count = await receiver.count();
      if (count !== last) {
        last = count;
        lastChange = Date.now();
      }
      return count >= expected || Date.now() - lastChange > stallMs;
    },
    timeoutMs,
  );
}

interface Delivery {
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  unexpected: number;
  badSignatures: number;
  /** Events per second from the first commit sent to the last arrival. */
  perSecond: number;
  /** From the order app's commit acknowledgement to the arrival at the receiver, ms. */
  latency: Latency;
  /** From the order app sending its UPDATE (so including the commit itself), ms. */
  latencyFromSent: Latency;
  firstArrival: number;
  lastArrival: number;
}

function analyse(expected: Map<string, Commit>, arrivals: Arrival[], badSignatures: number, from?: number): Delivery {
  const seenIds = new Set<string>();
  const seenBodies = new Set<string>();
  let duplicates = 0;
  let unexpected = 0;
  const fromAck: number[] = [];
  const fromSent: number[] = [];
  let first = Infinity;
  let last = -Infinity;
  for (const arrival of arrivals) {
    const commit = expected.get(arrival.body);
    if (!commit) {
      unexpected++;
      continue;
    }
    if (seenIds.has(arrival.eventId) || seenBodies.has(arrival.body)) {
      duplicates++;
      continue;
    }
    seenIds.add(arrival.eventId);
    seenBodies.add(arrival.body);
    fromAck.push(arrival.at - commit.ack);
    fromSent.push(arrival.at - commit.sent);
    first = Math.min(first, arrival.at);
    last = Math.max(last, arrival.at);
  }
  const start = from ?? Math.min(...[...expected.values()].map((c) => c.sent));
  return {
    expected: expected.size,
    delivered: seenBodies.size,
    lost: expected.size - seenBodies.size,
    duplicates,
    unexpected,
    badSignatures,
    perSecond: seenBodies.size / ((last - start) / 1000),
    latency: latency(fromAck),
    latencyFromSent: latency(fromSent),
    firstArrival: first,
    lastArrival: last,
  };
}

function keyed(commits: Map<number, Commit>, eventType: string): Map<string, Commit> {
  return new Map([...commits].map(([id, commit]) => [bodyOf(id, eventType), commit]));
}

// ---- the run ----------------------------------------------------------------------------------

const admin = new pg.Client({ connectionString: SERVER });
const results: Record<string, unknown> = {};
let receiver: ReceiverProcess | undefined;
let service: ServiceProcess | undefined;
let db: pg.Client | undefined;

async function setUp(): Promise<string> {
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(dbName)}`);
  db = new pg.Client({ connectionString: dbUrl, application_name: 'bench' });
  await db.connect();
  for (const table of ['orders', 'orders_bare']) {
    await db.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, state text NOT NULL, due_date date, note text)`);
    await db.query(`INSERT INTO ${table} SELECT i, 'created', date '2027-01-01' + (i % 365), 'bench' FROM generate_series(1, ${ORDERS}) i`);
    await db.query(`VACUUM ANALYZE ${table}`);
  }
  receiver = await startReceiver(SECRET);
  const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-bench-'));
  const configPath = join(dir, 'config.json');
  const config = {
    webHook: { enabled: true, endpoint: receiver.url, secret: SECRET, concurrency: CONCURRENCY },
    database: { url: dbUrl },
    orders: { table: 'orders', idColumn: 'id', stateColumn: 'state', dueDateColumn: 'due_date' },
    logLevel: 'info',
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  execFileSync(process.execPath, [new URL('../bin/order-webhooks.js', import.meta.url).pathname, 'migrate', '--config', configPath], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return configPath;
}

async function backlog(): Promise<number> {
  const { rows } = await db!.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM order_webhooks.change)
          + (SELECT count(*) FROM order_webhooks.outbox WHERE status = 'pending') AS n`,
  );
  return Number(rows[0]!.n);
}

/**
 * Between workloads: the backlog drained, then VACUUM, so that each workload starts from the same
 * state and not from wherever autovacuum happens to be with the last one's 700,000 dead rows.
 */
async function settle(): Promise<void> {
  await waitUntil('the backlog to drain', async () => (await backlog()) === 0, 240_000);
  await db!.query('VACUUM (ANALYZE) orders, order_webhooks.change, order_webhooks.outbox, order_webhooks.outbox_attempt');
}

/** Runs pgbench without blocking our event loop, so that NOTIFYs are counted while it runs. */
async function pgbench(table: string, clients: number, seconds: number, dir: string): Promise<number> {
  const script = join(dir, `${table}.sql`);
  writeFileSync(
    script,
    `\\set id random(1, ${ORDERS})\nUPDATE ${table} SET state = CASE state WHEN 'accepted' THEN 'signed' ELSE 'accepted' END WHERE id = :id;\n`,
  );
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      PGBENCH,
      ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(clients, 2)), '-T', String(seconds), '-f', script, dbUrl],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited with ${code}: ${text}`))));
  });
  return Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)![1]);
}

// Three variants per round, alternating: the bare table; the captured table with the service stopped
// (the trigger's own cost); the captured table with the service running (what an operator sees).
type W1Variant = 'bare' | 'trigger only' | 'capture + service';

async function w1(configPath: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'order-webhooks-pgbench-'));
  await service?.stop();
  service = undefined;
  const listen = new pg.Client({ connectionString: dbUrl });
  await listen.connect();
  let notifications = 0;
  listen.on('notification', () => notifications++);
  await listen.query('LISTEN order_webhooks_wake');
  const runs: {
    clients: number;
    variant: W1Variant;
    tps: number;
    notifications: number;
    drainSeconds?: number;
    load: string;
    cpu: CpuSplit;
  }[] = [];
  const drain = async () => {
    const started = Date.now();
    await waitUntil('the W1 backlog to drain', async () => (await backlog()) === 0, 240_000);
    return (Date.now() - started) / 1000;
  };
  for (const clients of [1, 8]) {
    for (let round = 1; round <= 2; round++) {
      for (const variant of ['bare', 'trigger only', 'capture + service'] as const) {
        if (variant === 'capture + service') {
          // What the trigger-only run left in the journal is delivered first, so the run starts clean.
          service = await startService(configPath, SERVICE_NODE_ARGS);
          await drain();
        }
        await db!.query('CHECKPOINT');
        const loadBefore = load();
        notifications = 0;
        const meter = cpuMeter();
        const tps = await pgbench(variant === 'bare' ? 'orders_bare' : 'orders', clients, W1_SECONDS, dir);
        const cpu = meter();
        await listen.query('SELECT 1'); // every NOTIFY of the run has reached us before this answer
        const run: (typeof runs)[number] = { clients, variant, tps, notifications, load: loadBefore, cpu };
        if (variant === 'capture + service') {
          // Let the service deliver what the run produced, so that it does not weigh on the next run.
          run.drainSeconds = await drain();
          await service!.stop();
          service = undefined;
        }
        runs.push(run);
        log(
          `W1 ${clients} client(s) ${variant}: ${tps.toFixed(0)} tps, ${notifications} NOTIFYs${run.drainSeconds !== undefined ? `, drained in ${run.drainSeconds.toFixed(1)} s` : ''}; ${describeCpu(cpu)}`,
        );
      }
    }
  }
  await listen.end();
  const tps = (clients: number, variant: W1Variant) =>
    mean(runs.filter((r) => r.clients === clients && r.variant === variant).map((r) => r.tps));
  results.W1 = {
    seconds: W1_SECONDS,
    runs,
    bareTps1: tps(1, 'bare'),
    triggerTps1: tps(1, 'trigger only'),
    captureTps1: tps(1, 'capture + service'),
    bareTps8: tps(8, 'bare'),
    triggerTps8: tps(8, 'trigger only'),
    captureTps8: tps(8, 'capture + service'),
    triggerRatio1: tps(1, 'trigger only') / tps(1, 'bare'),
    triggerRatio8: tps(8, 'trigger only') / tps(8, 'bare'),
    ratio1: tps(1, 'capture + service') / tps(1, 'bare'),
    ratio8: tps(8, 'capture + service') / tps(8, 'bare'),
  };
}

interface W2Load {
  saturated: Delivery;
  saturatedCpu: CpuSplit;
  commitSeconds: number;
  serviceCpuSeconds: number;
  paced: Delivery;
  /** CPU per delivered event, ms: the service process, and its PostgreSQL backends (claims, results). */
  perEvent: { saturated: { serviceMs: number; postgresMs: number }; paced: { serviceMs: number; postgresMs: number } };
}

/** CPU seconds so far of each of the service's PostgreSQL backends, by pid. */
async function serviceBackendCpu(): Promise<Map<number, number>> {
  const { rows } = await db!.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'order-webhooks%' AND datname = current_database()`,
  );
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(pid, cpuSecondsOf(pid));
    } catch {
      // the connection ended since pg_stat_activity listed it
    }
  }
  return cpu;
}

/** What the service's backends used between two readings (a backend new in the second counts whole). */
function backendCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let seconds = 0;
  for (const [pid, cpu] of after) seconds += cpu - (before.get(pid) ?? 0);
  return seconds;
}

/** W2's two loads on the running service: 20,000 changes as fast as they go, then 10,000 at 500 commits/s. */
async function w2Load(
  label: string,
  [fastState, fastEvent]: [string, string],
  [pacedState, pacedEvent]: [string, string],
): Promise<W2Load> {
  await settle();
  await receiver!.phase();
  log(`${label} saturated: 20,000 changes from 8 connections`);
  const cpuBefore = service!.cpuSeconds();
  const backendsBefore = await serviceBackendCpu();
  const meter = cpuMeter();
  const commits = await commitChanges(range(1, 20_000), fastState, 8);
  await awaitArrivals(receiver!, 20_000);
  const saturatedCpu = meter();
  const backendsAfter = await serviceBackendCpu();
  const got = await receiver!.collect();
  const saturated = analyse(keyed(commits, fastEvent), got.arrivals, got.badSignatures);
  const serviceCpu = service!.cpuSeconds() - cpuBefore;
  const commitSeconds =
    (Math.max(...[...commits.values()].map((c) => c.ack)) - Math.min(...[...commits.values()].map((c) => c.sent))) / 1000;
  log(
    `${label} saturated: ${saturated.perSecond.toFixed(0)} events/s, p50 ${saturated.latency.p50.toFixed(1)} ms, lost ${saturated.lost}, dup ${saturated.duplicates}; ${describeCpu(saturatedCpu)}`,
  );

  await receiver!.phase();
  log(`${label} paced: 500 commits/s for 20 s`);
  const pacedCpuBefore = service!.cpuSeconds();
  const pacedBackendsBefore = await serviceBackendCpu();
  const pacedCommits = await commitChanges(range(20_001, 10_000), pacedState, 8, 500);
  await awaitArrivals(receiver!, 10_000);
  const pacedServiceCpu = service!.cpuSeconds() - pacedCpuBefore;
  const pacedBackendsCpu = backendCpuBetween(pacedBackendsBefore, await serviceBackendCpu());
  const pacedGot = await receiver!.collect();
  const paced = analyse(keyed(pacedCommits, pacedEvent), pacedGot.arrivals, pacedGot.badSignatures);
  const perEvent = {
    saturated: {
      serviceMs: (serviceCpu * 1000) / saturated.delivered,
      postgresMs: (backendCpuBetween(backendsBefore, backendsAfter) * 1000) / saturated.delivered,
    },
    paced: { serviceMs: (pacedServiceCpu * 1000) / paced.delivered, postgresMs: (pacedBackendsCpu * 1000) / paced.delivered },
  };
  log(
    `${label} paced: p50 ${paced.latency.p50.toFixed(1)} ms p99 ${paced.latency.p99.toFixed(1)} ms, lost ${paced.lost}, dup ${paced.duplicates}`,
  );
  log(
    `${label} CPU per event, service / its PostgreSQL backends: saturated ${perEvent.saturated.serviceMs.toFixed(3)} / ${perEvent.saturated.postgresMs.toFixed(3)} ms, paced ${perEvent.paced.serviceMs.toFixed(3)} / ${perEvent.paced.postgresMs.toFixed(3)} ms`,
  );
  return { saturated, saturatedCpu, commitSeconds, serviceCpuSeconds: serviceCpu, paced, perEvent };
}

async function w2(configPath: string): Promise<void> {
  service ??= await startService(configPath, SERVICE_NODE_ARGS);
  const load = await w2Load('W2', ['expired', 'OrderExpired'], ['rejected', 'OrderRejected']);
  // What W2's deliveries (and W1's, when it ran) keep on disk, once drained and vacuumed.
  await settle();
  results.storage = await measureStorage(db!);
  log(`Storage: ${describeStorage(results.storage as StorageResult)}`);
  await receiver!.phase();
  const loop = await runGotLoop(`${receiver!.url}/bare`, 20_000, CONCURRENCY, SECRET);
  log(`W2 bare got loop: ${loop.perSecond.toFixed(0)} requests/s, ${loop.cpuMsPerRequest.toFixed(3)} ms CPU per request`);
  // The same loop with got's defaults, without the Sender's hook: what the hook is worth.
  const plainLoop = await runGotLoop(`${receiver!.url}/bare`, 20_000, CONCURRENCY, SECRET, true);
  log(`W2 bare got loop, got's defaults: ${plainLoop.perSecond.toFixed(0)} requests/s`);
  results.W2 = {
    ...load,
    gotLoop: loop,
    plainGotLoop: plainLoop,
    ratioToGotLoop: load.saturated.perSecond / loop.perSecond,
  };
  if (W2_TRACING_PAIRS > 0) await w2Tracing(configPath, load);
}

/** One W2 run's figures for the tracing comparison. */
interface W2TracingRun {
  tracing: boolean;
  perSecond: number;
  /** Service CPU per event in the saturated load, ms. */
  serviceCpuMs: number;
  pacedP50: number;
  pacedP99: number;
  lost: number;
  duplicates: number;
  /** Spans the sink received, and the attempts they stand for (tracing on). */
  spans?: number;
  attempts?: number;
}

/**
 * W2 with tracing off and on, alternating for BENCH_W2_TRACING pairs (W2's own run is the first
 * "off"): the service is restarted for each run, with `telemetry.otlp` pointing at a collector
 * stand-in in its own process (otlpSink.ts) when on.
 */
async function w2Tracing(configPath: string, first: W2Load): Promise<void> {
  const sink = await startOtlpSink();
  const traced = configPath.replace(/\.json$/, '-tracing.json');
  writeFileSync(
    traced,
    JSON.stringify({ ...JSON.parse(readFileSync(configPath, 'utf8')), telemetry: { otlp: { endpoint: sink.url } } }, null, 2),
  );
  const figures = (tracing: boolean, load: W2Load): W2TracingRun => ({
    tracing,
    perSecond: load.saturated.perSecond,
    serviceCpuMs: (load.serviceCpuSeconds * 1000) / load.saturated.expected,
    pacedP50: load.paced.latency.p50,
    pacedP99: load.paced.latency.p99,
    lost: load.saturated.lost + load.paced.lost,
    duplicates: load.saturated.duplicates + load.paced.duplicates,
  });
  const runs = [figures(false, first)];
  // Each run moves the same orders to a state they are not in, so that every change is an event.
  const states: [string, string][] = [
    ['signed', 'OrderSigned'],
    ['accepted', 'OrderAccepted'],
    ['cancelled', 'OrderCanceled'],
    ['expired', 'OrderExpired'],
    ['rejected', 'OrderRejected'],
  ];
  for (let i = 0; i < 2 * W2_TRACING_PAIRS - 1; i++) {
    const tracing = i % 2 === 0;
    await settle();
    await service?.stop();
    service = await startService(tracing ? traced : configPath, SERVICE_NODE_ARGS);
    await sink.reset();
    const load = await w2Load(`W2 tracing ${tracing ? 'on' : 'off'}`, states[(2 * i) % 5]!, states[(2 * i + 1) % 5]!);
    const run = figures(tracing, load);
    if (tracing) {
      run.attempts = load.saturated.delivered + load.paced.delivered;
      // The batch processor exports every 5 s or 512 spans: wait for the last batch.
      await waitUntil('the last spans at the sink', async () => (await sink.count()).spans >= run.attempts!, 15_000);
      run.spans = (await sink.count()).spans;
    }
    runs.push(run);
    log(
      `W2 tracing ${tracing ? 'on' : 'off'}: ${run.perSecond.toFixed(0)} events/s, service ${run.serviceCpuMs.toFixed(2)} ms CPU per event, paced p50/p99 ${run.pacedP50.toFixed(1)}/${run.pacedP99.toFixed(1)} ms${tracing ? `, ${run.spans} spans for ${run.attempts} attempts` : ''}`,
    );
  }
  // Later workloads start the service from the plain config.
  await settle();
  await service?.stop();
  service = undefined;
  sink.close();
  const side = (tracing: boolean) => {
    const of = runs.filter((r) => r.tracing === tracing);
    return {
      perSecond: mean(of.map((r) => r.perSecond)),
      serviceCpuMs: mean(of.map((r) => r.serviceCpuMs)),
      pacedP50: mean(of.map((r) => r.pacedP50)),
      pacedP99: mean(of.map((r) => r.pacedP99)),
    };
  };
  const on = runs.filter((r) => r.tracing);
  results.W2tracing = {
    pairs: W2_TRACING_PAIRS,
    runs,
    off: side(false),
    on: side(true),
    spans: on.reduce((n, r) => n + r.spans!, 0),
    attempts: on.reduce((n, r) => n + r.attempts!, 0),
    lost: runs.reduce((n, r) => n + r.lost, 0),
    duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
  };
}

async function w3(configPath: string): Promise<void> {
  if (service) await settle();
  await service?.stop();
  service = undefined;
  await receiver!.phase();
  log('W3: committing 50,000 changes while the service is stopped');
  const ids = range(30_001, 50_000);
  const sent = now();
  for (let i = 0; i < ids.length; i += 1000) {
    await db!.query(`UPDATE orders SET state = 'cancelled' WHERE id BETWEEN $1 AND $2`, [ids[i], ids[i]! + 999]);
  }
  const ack = now();
  const expected = new Map(ids.map((id) => [bodyOf(id, 'OrderCanceled'), { sent, ack }]));
  service = await startService(configPath, SERVICE_NODE_ARGS);
  const cpuBefore = service.cpuSeconds();
  const meter = cpuMeter();
  await awaitArrivals(receiver!, ids.length);
  const cpu = meter();
  const pgCpuSeconds = await serviceBackendsCpuSeconds(db!);
  const got = await receiver!.collect();
  const drain = analyse(expected, got.arrivals, got.badSignatures, service.startedAt);
  results.W3 = {
    drain: { ...drain, latency: undefined, latencyFromSent: undefined },
    peakRssMb: service.peakRssMb(),
    launcherPeakRssMb: service.launcherPeakRssMb(),
    serviceCpuSeconds: service.cpuSeconds() - cpuBefore,
    pgCpuSeconds,
    cpu,
  };
  const perEvent = (seconds: number) => ((seconds * 1000) / ids.length).toFixed(3);
  log(
    `W3: ${drain.perSecond.toFixed(0)} events/s, peak RSS ${service.peakRssMb().toFixed(0)} MB (started as ${SERVICE_START}${SERVICE_START === 'npm' ? `; npm and its shell ${service.launcherPeakRssMb().toFixed(0)} MB more` : ''}), lost ${drain.lost}, dup ${drain.duplicates}; ${describeCpu(cpu)}; ` +
      `CPU per event: service ${perEvent(service.cpuSeconds() - cpuBefore)} ms, its PostgreSQL backends ${perEvent(pgCpuSeconds)} ms`,
  );
}

async function w1b(configPath: string): Promise<void> {
  if (service) await settle();
  await service?.stop();
  service = undefined;
  results.W1b = await runBulk({
    db: db!,
    configPath,
    receiver: receiver!,
    log,
    load,
    startService: (path) => startService(path, SERVICE_NODE_ARGS),
    awaitArrivals: (r, expected) => awaitArrivals(r, expected, 15_000, 600_000),
    analyse,
    bodyOf,
  });
  await db!.query('VACUUM (ANALYZE) orders, orders_bare, order_webhooks.change');
}

async function w4(configPath: string): Promise<void> {
  service ??= await startService(configPath, SERVICE_NODE_ARGS);
  await settle();
  await receiver!.phase(50);
  const count = 5_000;
  log(`W4: ${count} changes to a receiver that answers after 50 ms`);
  const ids = range(80_001, count);
  const sent = now();
  await db!.query(`UPDATE orders SET state = 'expired' WHERE id BETWEEN $1 AND $2`, [ids[0], ids[ids.length - 1]]);
  const ack = now();
  await awaitArrivals(receiver!, count);
  const got = await receiver!.collect();
  const delivery = analyse(new Map(ids.map((id) => [bodyOf(id, 'OrderExpired'), { sent, ack }])), got.arrivals, got.badSignatures);
  results.W4 = {
    delivery: { ...delivery, latency: undefined, latencyFromSent: undefined },
    concurrency: CONCURRENCY,
    ceiling: CONCURRENCY / 0.05,
    ratio: delivery.perSecond / (CONCURRENCY / 0.05),
  };
  log(`W4: ${delivery.perSecond.toFixed(0)} events/s of ${CONCURRENCY / 0.05}`);
}

async function w8(configPath: string): Promise<void> {
  if (service) await settle();
  await service?.stop();
  service = undefined;
  results.W8 = await runEndpoints({
    db: db!,
    configPath,
    receiver: receiver!,
    log,
    startReceiver: () => startReceiver(SECRET),
    startService: (path) => startService(path, SERVICE_NODE_ARGS),
    commitChanges,
    awaitArrivals: (r, expected) => awaitArrivals(r, expected),
    analyse,
    keyed,
  });
}

async function w5(configPath: string): Promise<void> {
  if (service) await settle();
  await service?.stop();
  // Short retry delays, so that recovery is not the backoff schedule; they outlast the outage.
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  config.webHook.retry = { delays: W5_RETRY_DELAYS };
  const w5Config = configPath.replace(/\.json$/, '-w5.json');
  writeFileSync(w5Config, JSON.stringify(config, null, 2));
  service = await startService(w5Config, SERVICE_NODE_ARGS);
  await settle();
  const ctx = { dbUrl, db: db!, receiver: receiver!, service, log, backlog };
  results.W5 = await runOutage(ctx, W5_PLOT);
  await settle();
  results.W5b = await runBigBacklog(ctx);
  // W5b leaves 200,000 events pending: nothing after it, the database is dropped.
  await service.stop();
  service = undefined;
}

/**
 * W6: the cost of retention. The same saturated load as W2 (8 connections committing single-row
 * changes as fast as they can) twice, each right after a service start: once with nothing to delete,
 * once with 500,000 delivered events (and their attempts) expired by 40 days, which the service's
 * retention starts deleting at start. Delivery's rate with retention must stay within 10% of without.
 */
async function w6(configPath: string): Promise<void> {
  const ids = range(85_001, 15_000);
  const states: [string, string][] = [
    ['rejected', 'OrderRejected'],
    ['cancelled', 'OrderCanceled'],
    ['expired', 'OrderExpired'],
    ['signed', 'OrderSigned'],
  ];
  const runs: { retention: boolean; perSecond: number; lost: number; duplicates: number; deletedDuringLoad: number }[] = [];
  const expiredLeft = async () =>
    Number((await db!.query<{ n: string }>("SELECT count(*) AS n FROM order_webhooks.outbox WHERE order_id LIKE 'old-%'")).rows[0]!.n);
  let deletionSeconds: number | undefined;
  for (let run = 0; run < 2 * W6_ROUNDS; run++) {
    const withRetention = run % 2 === 1;
    service ??= await startService(configPath, SERVICE_NODE_ARGS);
    await settle();
    await service.stop();
    service = undefined;
    if (withRetention) {
      log(`W6: adding ${W6_EXPIRED.toLocaleString('en-US')} delivered events expired by 40 days, with their attempts`);
      await db!.query(
        `INSERT INTO order_webhooks.outbox (change_id, order_id, event_type, body, status, attempts, next_attempt_at, created_at, delivered_at)
         SELECT i, 'old-' || i, 'OrderCreated', '{"orderId":"' || i || '","eventType":"OrderCreated"}', 'delivered', 1,
                NULL, now() - interval '40 days', now() - interval '40 days'
           FROM generate_series(1, $1::int) i`,
        [W6_EXPIRED],
      );
      await db!.query(
        `INSERT INTO order_webhooks.outbox_attempt (outbox_id, event_id, attempt, started_at, duration_ms, http_status)
         SELECT id, event_id, 1, created_at, 3, 200 FROM order_webhooks.outbox WHERE order_id LIKE 'old-%'`,
      );
      await db!.query('VACUUM (ANALYZE) order_webhooks.outbox, order_webhooks.outbox_attempt');
    }
    const [state, eventType] = states[run % states.length]!;
    await receiver!.phase();
    // Retention's first round runs at start: the load begins as it does.
    service = await startService(configPath, SERVICE_NODE_ARGS);
    const startedAt = Date.now();
    log(
      `W6 ${withRetention ? 'while retention deletes' : 'without retention work'}: ${ids.length.toLocaleString('en-US')} changes from 8 connections`,
    );
    const commits = await commitChanges(ids, state, 8);
    await awaitArrivals(receiver!, ids.length);
    const got = await receiver!.collect();
    const delivery = analyse(keyed(commits, eventType), got.arrivals, got.badSignatures);
    const left = withRetention ? await expiredLeft() : 0;
    runs.push({
      retention: withRetention,
      perSecond: delivery.perSecond,
      lost: delivery.lost,
      duplicates: delivery.duplicates,
      deletedDuringLoad: withRetention ? W6_EXPIRED - left : 0,
    });
    log(
      `W6 ${withRetention ? 'with' : 'without'} retention: ${delivery.perSecond.toFixed(0)} events/s, lost ${delivery.lost}, dup ${delivery.duplicates}${withRetention ? `; ${(W6_EXPIRED - left).toLocaleString('en-US')} expired rows deleted by the end of the load` : ''}`,
    );
    if (withRetention) {
      await waitUntil('retention to delete every expired row', async () => (await expiredLeft()) === 0, 600_000);
      deletionSeconds = (Date.now() - startedAt) / 1000;
      log(`W6: all ${W6_EXPIRED.toLocaleString('en-US')} expired rows deleted ${deletionSeconds.toFixed(1)} s after the start`);
    }
  }
  const rate = (retention: boolean) => mean(runs.filter((r) => r.retention === retention).map((r) => r.perSecond));
  results.W6 = {
    runs,
    expired: W6_EXPIRED,
    without: rate(false),
    with: rate(true),
    ratio: rate(true) / rate(false),
    deletedDuringLoad: mean(runs.filter((r) => r.retention).map((r) => r.deletedDuringLoad)),
    deletionSeconds,
    lost: runs.reduce((n, r) => n + r.lost, 0),
    duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
  };
}

// ---- the report --------------------------------------------------------------------------------

type Row = [string, string, string, boolean | undefined];

function rows(): Row[] {
  const out: Row[] = [];
  const f = (n: number, digits = 0) =>
    Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : 'n/a';
  const w1 = results.W1 as any;
  if (w1) {
    for (const c of [1, 8]) {
      const target = c === 1 ? 0.85 : 0.75;
      out.push([
        `W1 ${c} client${c > 1 ? 's' : ''}: tps bare / trigger only / capture + service`,
        `${f(w1[`bareTps${c}`])} / ${f(w1[`triggerTps${c}`])} / ${f(w1[`captureTps${c}`])}`,
        '',
        undefined,
      ]);
      out.push([`W1 ${c} client${c > 1 ? 's' : ''}: ratio, trigger only (service stopped)`, f(w1[`triggerRatio${c}`], 2), '', undefined]);
      out.push([
        `W1 ${c} client${c > 1 ? 's' : ''}: ratio, capture + service running`,
        f(w1[`ratio${c}`], 2),
        `≥ ${target}`,
        w1[`ratio${c}`] >= target,
      ]);
    }
  }
  const w2 = results.W2 as any;
  if (w2) {
    const s = w2.saturated;
    out.push(['W2 delivered events/s (saturated)', f(s.perSecond), '≥ 2,000', s.perSecond >= 2000]);
    out.push(['W2 order app commits/s (8 connections)', f(20_000 / w2.commitSeconds), '', undefined]);
    out.push(["W2 bare got loop requests/s (Sender's options)", f(w2.gotLoop.perSecond), '', undefined]);
    out.push(['W2 bare got loop CPU ms per request', f(w2.gotLoop.cpuMsPerRequest, 3), '', undefined]);
    if (w2.plainGotLoop) out.push(["W2 same loop with got's defaults requests/s", f(w2.plainGotLoop.perSecond), '', undefined]);
    out.push(['W2 ratio to the got loop', f(w2.ratioToGotLoop, 2), '≥ 0.70', w2.ratioToGotLoop >= 0.7]);
    const pe = w2.perEvent;
    out.push([
      'W2 CPU ms per event, saturated: service / its PostgreSQL backends',
      `${f(pe.saturated.serviceMs, 3)} / ${f(pe.saturated.postgresMs, 3)}`,
      '',
      undefined,
    ]);
    out.push([
      'W2 CPU ms per event, paced: service / its PostgreSQL backends',
      `${f(pe.paced.serviceMs, 3)} / ${f(pe.paced.postgresMs, 3)}`,
      '',
      undefined,
    ]);
    out.push([
      'W2 saturated latency p50/p95/p99/max ms',
      `${f(s.latency.p50, 1)} / ${f(s.latency.p95, 1)} / ${f(s.latency.p99, 1)} / ${f(s.latency.max, 1)}`,
      '',
      undefined,
    ]);
    out.push(['W2 saturated lost / duplicates', `${s.lost} / ${s.duplicates}`, '0 / 0', s.lost === 0 && s.duplicates === 0]);
    const p = w2.paced;
    out.push(['W2 paced 500/s latency p50 ms', f(p.latency.p50, 1), '≤ 5', p.latency.p50 <= 5]);
    out.push(['W2 paced 500/s latency p95 / max ms', `${f(p.latency.p95, 1)} / ${f(p.latency.max, 1)}`, '', undefined]);
    out.push(['W2 paced 500/s latency p99 ms', f(p.latency.p99, 1), '≤ 20', p.latency.p99 <= 20]);
    out.push(['W2 paced p50 / p99 from UPDATE sent ms', `${f(p.latencyFromSent.p50, 1)} / ${f(p.latencyFromSent.p99, 1)}`, '', undefined]);
    out.push(['W2 paced lost / duplicates', `${p.lost} / ${p.duplicates}`, '0 / 0', p.lost === 0 && p.duplicates === 0]);
    out.push(['W2 bad signatures', String(s.badSignatures + p.badSignatures), '0', s.badSignatures + p.badSignatures === 0]);
  }
  const storage = results.storage as StorageResult | undefined;
  if (storage) {
    out.push([
      `Storage bytes per delivered event kept (outbox, attempts, indexes; ${f(storage.delivered)} events)`,
      f(storage.bytesPerEvent),
      '≤ 200',
      storage.bytesPerEvent <= 200,
    ]);
  }
  const wt = results.W2tracing as any;
  if (wt) {
    const pair = (key: string, digits: number) => `${f(wt.off[key], digits)} / ${f(wt.on[key], digits)}`;
    out.push([`W2 tracing off / on, mean of ${wt.pairs}: delivered events/s`, pair('perSecond', 0), '', undefined]);
    out.push(['W2 tracing off / on: service CPU ms per event', pair('serviceCpuMs', 2), '', undefined]);
    out.push(['W2 tracing off / on: paced p50 ms', pair('pacedP50', 1), '', undefined]);
    out.push(['W2 tracing off / on: paced p99 ms', pair('pacedP99', 1), '', undefined]);
    out.push(['W2 tracing on: spans received / attempts', `${f(wt.spans)} / ${f(wt.attempts)}`, '', undefined]);
    out.push(['W2 tracing runs lost / duplicates', `${wt.lost} / ${wt.duplicates}`, '0 / 0', wt.lost === 0 && wt.duplicates === 0]);
  }
  const w3 = results.W3 as any;
  if (w3) {
    out.push(['W3 backlog drain events/s', f(w3.drain.perSecond), '≥ 2,000', w3.drain.perSecond >= 2000]);
    out.push(['W3 service peak RSS MB', f(w3.peakRssMb), '≤ 120', w3.peakRssMb <= 120]);
    out.push([
      'W3 lost / duplicates',
      `${w3.drain.lost} / ${w3.drain.duplicates}`,
      '0 / 0',
      w3.drain.lost === 0 && w3.drain.duplicates === 0,
    ]);
  }
  const w1b = results.W1b as BulkResult | undefined;
  if (w1b)
    out.push(
      ...bulkRows(
        w1b,
        (results.W3 as any)?.drain
          ? { perSecond: (results.W3 as any).drain.perSecond, peakRssMb: (results.W3 as any).peakRssMb }
          : undefined,
        f,
      ),
    );
  const w4 = results.W4 as any;
  if (w4) {
    out.push([
      `W4 events/s, 50 ms receiver, concurrency ${w4.concurrency}`,
      f(w4.delivery.perSecond),
      `≥ ${f(0.8 * w4.ceiling)} (0.8 × ${f(w4.ceiling)})`,
      w4.ratio >= 0.8,
    ]);
    out.push([
      'W4 lost / duplicates',
      `${w4.delivery.lost} / ${w4.delivery.duplicates}`,
      '0 / 0',
      w4.delivery.lost === 0 && w4.delivery.duplicates === 0,
    ]);
  }
  const w5 = results.W5 as OutageResult | undefined;
  if (w5) {
    const w = w5.windows;
    const br = w5.breaker;
    out.push(['W5 circuit breaker open after s', br.openedAfter === null ? 'never' : f(br.openedAfter, 1), '', undefined]);
    // One probe per interval: 10 s doubling to 5 min (the defaults), so at most 0.1/s.
    out.push([
      'W5 requests/s to the dead receiver once open (requests in s)',
      `${f(br.requestsPerSecond, 3)} (${br.requests} in ${f(br.seconds)} s)`,
      '≤ 0.1 (one per probe interval)',
      br.requestsPerSecond <= 0.1,
    ]);
    out.push(["W5 PostgreSQL CPU % of a core once open (the service's backends)", f(br.pgCpuPct, 1), '≤ 5', br.pgCpuPct <= 5]);
    out.push(['W5 PostgreSQL CPU % of a core, first / last 30 s', `${f(w[0]!.pgCpuPct, 1)} / ${f(w.at(-1)!.pgCpuPct, 1)}`, '', undefined]);
    out.push([
      'W5 failed attempts/s, first / last 30 s',
      `${f(w[0]!.failedAttempts / 30, 2)} / ${f(w.at(-1)!.failedAttempts / 30, 2)}`,
      '',
      undefined,
    ]);
    out.push([
      'W5 service CPU % of a core, first / last 30 s (once open)',
      `${f(w[0]!.serviceCpuPct, 1)} / ${f(w.at(-1)!.serviceCpuPct, 1)} (${f(br.serviceCpuPct, 1)})`,
      '',
      undefined,
    ]);
    out.push([
      'W5 claim statement ms, first / last 30 s',
      `${f(w[0]!.claim.ms, 2)} / ${f(w.at(-1)!.claim.ms, 2)} (${f(w5.ratios.claim, 2)}×)`,
      '',
      undefined,
    ]);
    out.push(['W5 events waiting at the end of the outage', f(w.at(-1)!.waiting), '', undefined]);
    out.push(['W5 service peak RSS MB (outage and drain)', f(w5.peakRssMb), '≤ 120', w5.peakRssMb <= 120]);
    out.push(['W5 receiver back → first delivery s (the next probe)', f(w5.drain.detectionSeconds, 1), '', undefined]);
    const w3rate = (results.W3 as any)?.drain?.perSecond as number | undefined;
    out.push([
      'W5 drain events/s from the first delivery (time to drain s)',
      `${f(w5.drain.perSecond)} (${f(w5.drain.seconds, 1)} s)`,
      w3rate ? `≥ ${f(w3rate)} (1.0 × W3)` : '≥ 1.0 × W3',
      w3rate ? w5.drain.perSecond >= w3rate : undefined,
    ]);
    out.push([
      'W5 lost / duplicates / order violations / failed',
      `${w5.drain.lost} / ${w5.drain.duplicates} / ${w5.drain.orderViolations} / ${w5.drain.failed}`,
      '0 / 0 / 0 / 0',
      w5.drain.lost === 0 && w5.drain.duplicates === 0 && w5.drain.orderViolations === 0 && w5.drain.failed === 0,
    ]);
  }
  const w5b = results.W5b as BigBacklogResult | undefined;
  if (w5b) {
    out.push([
      `W5b claim ms at ${f(w5b.small.waiting)} / ${f(w5b.large.waiting)} waiting (${f(w5b.large.inOutbox)} in the outbox)`,
      `${f(w5b.small.claim.ms, 2)} / ${f(w5b.large.claim.ms, 2)} (${f(w5b.ratio, 2)}×)`,
      '≤ 2×',
      w5b.ratio <= 2,
    ]);
    out.push(['W5b PostgreSQL CPU % of a core, at each', `${f(w5b.small.pgCpuPct, 1)} / ${f(w5b.large.pgCpuPct, 1)}`, '', undefined]);
  }
  const w8 = results.W8 as EndpointsResult | undefined;
  if (w8) {
    const fan = w8.fanout;
    const w2rate = (results.W2 as any)?.saturated?.perSecond as number | undefined;
    out.push([
      `W8 deliveries/s in all, ${fan.endpoints} endpoints each receiving every event (W2 in this run)`,
      `${f(fan.perSecond)}${w2rate ? ` (${f(w2rate)}; ${f(fan.perSecond / w2rate, 2)}×)` : ''}`,
      '',
      undefined,
    ]);
    out.push([
      'W8 fan-out lost / duplicates, per endpoint',
      fan.perEndpoint.map((d) => `${d.lost} / ${d.duplicates}`).join(', '),
      '0 / 0',
      fan.perEndpoint.every((d) => d.lost === 0 && d.duplicates === 0),
    ]);
    out.push(['W8 fan-out service peak RSS MB', f(fan.peakRssMb), '≤ 120 (W3)', fan.peakRssMb <= 120]);
    const calm = w8.isolation.runs.find((r) => r.other === 'healthy')!.healthy.latency.p99;
    for (const run of w8.isolation.runs) {
      const p99 = run.healthy.latency.p99;
      out.push([
        `W8 healthy endpoint paced ${w8.isolation.perSecond}/s p50 / p99 ms, other endpoint ${run.other}`,
        `${f(run.healthy.latency.p50, 1)} / ${f(p99, 1)}${run.other === 'healthy' ? '' : ` (${f(p99 / calm, 2)}×)`}`,
        run.other === 'healthy' ? '' : '≤ 1.5× the healthy run',
        run.other === 'healthy' ? undefined : p99 <= 1.5 * calm,
      ]);
    }
    out.push([
      'W8 isolation lost / duplicates (healthy endpoint)',
      w8.isolation.runs.map((r) => `${r.healthy.lost} / ${r.healthy.duplicates}`).join(', '),
      '0 / 0',
      w8.isolation.runs.every((r) => r.healthy.lost === 0 && r.healthy.duplicates === 0),
    ]);
  }
  out.push(...historyRows(results.W7 as HistoryResult | undefined, f));
  out.push(...instancesRows(results.W9 as InstancesRun[] | undefined, f));
  const w6 = results.W6 as any;
  if (w6) {
    out.push(['W6 delivered events/s without / while retention deletes', `${f(w6.without)} / ${f(w6.with)}`, '', undefined]);
    out.push([`W6 ratio while deleting ${f(w6.expired)} expired rows`, f(w6.ratio, 2), '≥ 0.90', w6.ratio >= 0.9]);
    out.push([
      'W6 expired rows deleted during the load / all deleted after s',
      `${f(w6.deletedDuringLoad)} / ${w6.deletionSeconds === undefined ? 'n/a' : f(w6.deletionSeconds, 1)}`,
      '',
      undefined,
    ]);
    out.push(['W6 lost / duplicates', `${w6.lost} / ${w6.duplicates}`, '0 / 0', w6.lost === 0 && w6.duplicates === 0]);
  }
  return out;
}

function table(data: Row[]): string {
  const header: [string, string, string, string] = ['measure', 'value', 'target', ''];
  const lines = data.map((r) => [r[0], r[1], r[2], r[3] === undefined ? '' : r[3] ? 'ok' : 'MISSED']);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

async function main(): Promise<void> {
  const began = Date.now();
  const startLoad = load();
  log(`database ${dbName}; workloads ${[...ONLY].join(',')}`);
  const configPath = await setUp();
  const version = (await db!.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
  if (ONLY.has('W1')) await w1(configPath);
  if (ONLY.has('W2')) await w2(configPath);
  if (ONLY.has('W3')) await w3(configPath);
  if (ONLY.has('W1B')) await w1b(configPath);
  if (ONLY.has('W4')) await w4(configPath);
  if (ONLY.has('W9')) {
    service ??= await startService(configPath, SERVICE_NODE_ARGS);
    await settle();
    await service.stop();
    service = undefined;
    const bench = { db: db!, configPath, receiver: receiver!, concurrency: CONCURRENCY, serviceNodeArgs: SERVICE_NODE_ARGS, log, load };
    results.W9 = await runInstances({ ...bench, awaitArrivals: (r, n) => awaitArrivals(r, n), analyse });
  }
  // Before W5, which leaves 200,000 events pending.
  if (ONLY.has('W6')) await w6(configPath);
  if (ONLY.has('W8')) await w8(configPath);
  if (ONLY.has('W5')) await w5(configPath);
  if (ONLY.has('W7')) {
    await service?.stop();
    service = undefined;
    results.W7 = await runHistory({
      log,
      load,
      serviceNodeArgs: SERVICE_NODE_ARGS,
      awaitArrivals: (r, n) => awaitArrivals(r, n),
      analyse,
      keyed,
    });
  }
  const meta = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GB`,
    node: process.version,
    serviceStart: SERVICE_START,
    postgres: version,
    loadAtStart: startLoad,
    loadAtEnd: load(),
    minutes: (Date.now() - began) / 60_000,
  };
  const data = rows();
  process.stdout.write(`\norder-webhooks bench, ${meta.date}\n${meta.machine}; node ${meta.node}; PostgreSQL ${meta.postgres}\n`);
  process.stdout.write(
    `load average (1/5/15 min) at start ${meta.loadAtStart}, at end ${meta.loadAtEnd}; took ${meta.minutes.toFixed(1)} min\n\n`,
  );
  process.stdout.write(`${table(data)}\n`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = new URL('latest.json', RESULTS_DIR);
  writeFileSync(file, `${JSON.stringify({ meta, results, table: data }, null, 2)}\n`);
  process.stdout.write(`\nresults: ${file.pathname}\n`);
}

async function tearDown(): Promise<void> {
  await service?.stop().catch(() => undefined);
  receiver?.close();
  await db?.end().catch(() => undefined);
  await admin
    .query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(dbName)} WITH (FORCE)`)
    .catch((e) => log(`could not drop ${dbName}: ${e}`));
  await admin.end().catch(() => undefined);
}

let interrupted = false;
process.on('SIGINT', () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  log('interrupted: cleaning up');
  void tearDown().then(() => process.exit(130));
});

try {
  await main();
} catch (error) {
  process.exitCode = 1;
  log(`failed: ${(error as Error).stack ?? String(error)}`);
  if (service) process.stderr.write(`service output (tail):\n${service.output().slice(-3000)}\n`);
} finally {
  if (!interrupted) await tearDown();
}
